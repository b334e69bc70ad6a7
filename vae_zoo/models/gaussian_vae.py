"""Gaussian VAE (Kingma & Welling 2014)."""

from vae_zoo.latents.normal import NormalLatent
from vae_zoo.models.vae import VAE


class GaussianVAE(VAE):
    """Diagonal-Normal latents with a standard-Normal prior; ``model.latent.dim`` sets their number."""

    latent_family = NormalLatent
