"""The continuous Bernoulli (Loaiza-Ganem & Cunningham 2019) for pixels in [0, 1]."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import ContinuousBernoulli

from vae_zoo.likelihoods.likelihood import Likelihood

TAYLOR_BELOW = 1e-2


def log_normalizer(logits: Tensor) -> Tensor:
    """``log C(l)`` with ``C = 2 atanh(1 - 2 lambda) / (1 - 2 lambda) = l / tanh(l / 2)`` for
    ``lambda = sigmoid(l)``; ``log 2 + l^2 / 12 - l^4 / 1440`` near 0."""
    small = logits.abs() < TAYLOR_BELOW
    safe = torch.where(small, torch.ones_like(logits), logits)
    exact = torch.log(safe.abs()) - torch.log(torch.tanh(safe.abs() / 2))
    square = logits.square()
    return torch.where(small, math.log(2) + square / 12 - square.square() / 1440, exact)


class ContinuousBernoulliLikelihood(Likelihood):
    """``log p(x|l) = x l - softplus(l) + log C(l)`` on [0, 1] per pixel: the Bernoulli log-likelihood
    plus the normalizer ``log C(l) = log(l / tanh(l / 2))``, computed from the logits so it stays exact in
    float32 for any ``l`` (torch's ``ContinuousBernoulli`` goes through ``lambda`` and loses the
    normalization beyond ``|l|`` ~ 25 in float64, much earlier in float32). A normalized density of
    continuous pixels, so of 8-bit images after uniform dequantization (``data.dequantize=true``). Its
    mean is not ``lambda``: ``sigmoid(l) / tanh(l / 2) - 1 / l`` (``1/2 + l / 12`` near 0).
    """

    fits = ("dequantized",)

    def nll(self, params: Tensor, x: Tensor) -> Tensor:
        cross_entropy = F.binary_cross_entropy_with_logits(params, x.expand_as(params), reduction="none")
        return (cross_entropy - log_normalizer(params)).flatten(-3).sum(-1)

    def mean(self, params: Tensor) -> Tensor:
        small = params.abs() < TAYLOR_BELOW
        safe = torch.where(small, torch.ones_like(params), params)
        exact = torch.sigmoid(safe) / torch.tanh(safe / 2) - 1 / safe
        return torch.where(small, 0.5 + params / 12, exact)

    def sample(self, params: Tensor) -> Tensor:
        return ContinuousBernoulli(logits=params.clamp(-50, 50), validate_args=False).sample()
