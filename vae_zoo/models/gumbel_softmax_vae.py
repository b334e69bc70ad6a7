"""Categorical VAE trained through the Gumbel-Softmax relaxation (Jang et al. 2016)."""

from vae_zoo.latents.categorical import CategoricalLatent
from vae_zoo.models.vae import VAE


class GumbelSoftmaxVAE(VAE):
    """N x K categorical latents (``model.latent.n``, ``model.latent.k``, ``model.latent.prior``).

    Training uses the relaxed (or straight-through) sample; validation and test use exact Gumbel-Max
    samples and categorical log-probabilities, so ``*/elbo`` and ``test/nll_iw`` bound the discrete model.
    """

    latent_family = CategoricalLatent
