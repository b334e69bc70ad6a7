"""Straight-through Gumbel-Softmax (Jang et al. 2016; Bengio et al. 2013)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Distribution

from vae_zoo.estimators.gumbel_softmax import GumbelSoftmaxEstimator


class StraightThroughEstimator(GumbelSoftmaxEstimator):
    """Forward: the exact one-hot ``argmax(logits + g)``; backward: the gradient of the relaxed sample.

    ``z = hard + (soft - soft.detach())``: the bracket is exactly zero in the forward pass, so ``z`` is
    exactly one-hot (an exact sample of q), and ``dz/dlogits = dsoft/dlogits``.
    """

    exact_samples = True

    def sample(self, q: Distribution, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        soft = self.relaxed(q, sample_shape)
        hard = F.one_hot(soft.argmax(-1), soft.shape[-1]).to(soft.dtype)
        return hard + (soft - soft.detach())
