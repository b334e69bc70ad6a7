"""Bernoulli observation model on logits, for binary (or grey-level-as-probability) pixels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class BernoulliLikelihood:
    """``log p(x|z) = sum_pixels [x * log sigmoid(l) + (1 - x) * log sigmoid(-l)]`` for logits ``l``."""

    def nll(self, logits: Tensor, x: Tensor) -> Tensor:
        """Per-image ``-log p(x|z)``; ``logits`` may carry extra leading sample dims over ``x``'s batch."""
        target = x.expand_as(logits)
        return F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(-3).sum(-1)

    def log_prob(self, logits: Tensor, x: Tensor) -> Tensor:
        """Per-image ``log p(x|z)``."""
        return -self.nll(logits, x)

    def mean(self, logits: Tensor) -> Tensor:
        """``E[x|z]``, the pixel probabilities, for image grids."""
        return torch.sigmoid(logits)
