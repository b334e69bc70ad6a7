"""Latent families: the distribution of z, its prior, its KL and how a sample enters the decoder."""

from vae_zoo.latents.categorical import CategoricalLatent
from vae_zoo.latents.family import LatentFamily
from vae_zoo.latents.gamma import GammaLatent
from vae_zoo.latents.normal import NormalLatent

__all__ = ["CategoricalLatent", "GammaLatent", "LatentFamily", "NormalLatent"]
