"""Observation models ``p(x|z)`` on decoder outputs."""

from vae_zoo.likelihoods.bernoulli import BernoulliLikelihood

__all__ = ["BernoulliLikelihood"]
