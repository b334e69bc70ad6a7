"""Straight-through Gumbel-Softmax (Jang et al. 2016; Bengio et al. 2013)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Distribution

from vae_zoo.estimators.gumbel_softmax import GumbelSoftmaxEstimator, categorical_logits
from vae_zoo.latents.gumbel import gumbel_softmax


class StraightThroughEstimator(GumbelSoftmaxEstimator):
    """Forward: the exact one-hot ``argmax(logits + g)``; backward: the gradient of the relaxed sample.

    ``z = hard + (soft - soft.detach())``: the bracket is exactly zero in the forward pass, so ``z`` is
    exactly one-hot, and ``dz/dlogits = dsoft/dlogits``.
    """

    name = "straight_through"

    def sample(self, q: Distribution) -> Tensor:
        soft = gumbel_softmax(categorical_logits(q), self.temperature)
        hard = F.one_hot(soft.argmax(-1), soft.shape[-1]).to(soft.dtype)
        return hard + (soft - soft.detach())
