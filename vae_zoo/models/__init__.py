"""VAE LightningModules: the shared base and one thin subclass per latent family."""

from vae_zoo.models.gamma_vae import GammaVAE
from vae_zoo.models.gaussian_vae import GaussianVAE
from vae_zoo.models.gumbel_softmax_vae import GumbelSoftmaxVAE
from vae_zoo.models.vae import VAE

__all__ = ["VAE", "GammaVAE", "GaussianVAE", "GumbelSoftmaxVAE"]
