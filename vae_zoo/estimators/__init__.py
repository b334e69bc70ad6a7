"""Gradient estimators: how a latent sample carries gradient to the encoder."""

from vae_zoo.estimators.arm import ARM
from vae_zoo.estimators.disarm import DisARM
from vae_zoo.estimators.estimator import Cost, Draw, Estimator
from vae_zoo.estimators.gumbel_rao import GumbelRao
from vae_zoo.estimators.gumbel_softmax import GumbelSoftmaxEstimator
from vae_zoo.estimators.implicit import ImplicitEstimator
from vae_zoo.estimators.nvil import NVIL
from vae_zoo.estimators.pathwise import PathwiseEstimator
from vae_zoo.estimators.rebar import REBAR
from vae_zoo.estimators.reinforce_loo import ReinforceLOO
from vae_zoo.estimators.reinmax import ReinMax
from vae_zoo.estimators.relax import RELAX
from vae_zoo.estimators.score_function import ScoreFunctionEstimator
from vae_zoo.estimators.straight_through import StraightThroughEstimator
from vae_zoo.estimators.vimco import VIMCO

__all__ = [
    "ARM",
    "NVIL",
    "REBAR",
    "RELAX",
    "VIMCO",
    "Cost",
    "DisARM",
    "Draw",
    "Estimator",
    "GumbelRao",
    "GumbelSoftmaxEstimator",
    "ImplicitEstimator",
    "PathwiseEstimator",
    "ReinMax",
    "ReinforceLOO",
    "ScoreFunctionEstimator",
    "StraightThroughEstimator",
]
