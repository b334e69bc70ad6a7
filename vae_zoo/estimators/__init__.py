"""Gradient estimators: how a latent sample carries gradient to the encoder."""

from vae_zoo.estimators.estimator import Cost, Estimator
from vae_zoo.estimators.gumbel_softmax import GumbelSoftmaxEstimator
from vae_zoo.estimators.implicit import ImplicitEstimator
from vae_zoo.estimators.pathwise import PathwiseEstimator
from vae_zoo.estimators.score_function import ScoreFunctionEstimator
from vae_zoo.estimators.straight_through import StraightThroughEstimator

__all__ = [
    "Cost",
    "Estimator",
    "GumbelSoftmaxEstimator",
    "ImplicitEstimator",
    "PathwiseEstimator",
    "ScoreFunctionEstimator",
    "StraightThroughEstimator",
]
