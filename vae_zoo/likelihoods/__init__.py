"""Observation models ``p(x|z)`` on decoder outputs."""

from vae_zoo.likelihoods.bernoulli import BernoulliLikelihood
from vae_zoo.likelihoods.likelihood import PIXELS, Likelihood

__all__ = ["PIXELS", "BernoulliLikelihood", "Likelihood"]
