"""Gradient estimators: how a latent sample carries gradient to the encoder."""

from vae_zoo.estimators.estimator import Estimator
from vae_zoo.estimators.pathwise import PathwiseEstimator

__all__ = ["Estimator", "PathwiseEstimator"]
