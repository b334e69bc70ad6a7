"""Gamma VAE trained with implicit reparameterization gradients (Figurnov et al. 2018)."""

from vae_zoo.latents.gamma import GammaLatent
from vae_zoo.models.vae import VAE


class GammaVAE(VAE):
    """Gamma latents with a Gamma(alpha0, beta0) prior (``model.latent.prior_concentration``,
    ``model.latent.prior_rate``, default 0.3 and 0.3); ``implicit`` is the default estimator."""

    latent_family = GammaLatent
