"""Bernoulli observation model on logits, for binary pixels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from vae_zoo.errors import ConfigError
from vae_zoo.likelihoods.likelihood import Likelihood


class BernoulliLikelihood(Likelihood):
    """``log p(x|z) = sum_pixels [x log sigmoid(l) + (1 - x) log sigmoid(-l)]`` for logits ``l``.

    A normalized density of binary pixels. On grey levels in [0, 1] the same expression is a common
    cross-entropy loss but not a density (it does not sum to 1 over the data), so its bounds are not
    log-likelihoods; ``allow_grey_levels: true`` permits it explicitly.
    """

    fits = ("binary",)

    def __init__(self, allow_grey_levels: bool = False) -> None:
        super().__init__()
        self.allow_grey_levels = allow_grey_levels

    def nll(self, params: Tensor, x: Tensor) -> Tensor:
        target = x.expand_as(params)
        return F.binary_cross_entropy_with_logits(params, target, reduction="none").flatten(-3).sum(-1)

    def mean(self, params: Tensor) -> Tensor:
        return torch.sigmoid(params)

    def sample(self, params: Tensor) -> Tensor:
        return torch.bernoulli(torch.sigmoid(params))

    def check_data(self, pixels: str) -> None:
        if pixels == "binary" or self.allow_grey_levels:
            return
        raise ConfigError(
            f"{self.misfit(pixels)}; or model.likelihood.allow_grey_levels=true to train on the (unnormalized) "
            "Bernoulli cross-entropy anyway"
        )
