"""Straight-through Gumbel-Softmax (Jang et al. 2016; Bengio et al. 2013)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Distribution

from vae_zoo.estimators.gumbel_softmax import GumbelSoftmaxEstimator
from vae_zoo.estimators.relaxation import relaxation


class StraightThroughEstimator(GumbelSoftmaxEstimator):
    """Forward: the exact sample ``H(z)`` of the perturbed logits (one-hot ``argmax(logits + g)``, or
    ``1[a + l > 0]``); backward: the gradient of its relaxation ``sigma_tau(z)``.

    ``z = hard + (soft - soft.detach())``: the bracket is exactly zero in the forward pass, so ``z`` is
    exactly discrete (an exact sample of q), and ``dz/dlogits = dsoft/dlogits``. Biased.
    """

    exact_samples = True

    def sample(self, q: Distribution, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        relaxing = relaxation(q)
        z = relaxing.perturb(sample_shape)
        soft = relaxing.relax(z, self.temperature)
        return relaxing.hard(z) + (soft - soft.detach())
