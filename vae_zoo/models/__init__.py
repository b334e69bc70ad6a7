"""The shared VAE LightningModule and its named presets."""

from vae_zoo.models.presets import GammaVAE, GaussianVAE, GumbelSoftmaxVAE
from vae_zoo.models.vae import VAE

__all__ = ["VAE", "GammaVAE", "GaussianVAE", "GumbelSoftmaxVAE"]
