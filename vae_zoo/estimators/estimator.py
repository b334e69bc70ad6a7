"""The gradient-estimator contract: how a posterior sample carries gradient to the encoder."""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor, nn
from torch.distributions import Distribution, Independent


def elementwise(q: Distribution) -> Distribution:
    """The per-coordinate distribution inside an ``Independent`` wrapper."""
    return q.base_dist if isinstance(q, Independent) else q


class Estimator(ABC, nn.Module):
    """Draws the training sample ``z ~ q(z|x)`` so that ``grad E_q[f(z)]`` is estimated correctly.

    Pathwise estimators return a sample whose gradient is the estimate and add no surrogate. Others
    (score function) return a sample without gradient and a per-image ``surrogate`` whose gradient,
    added to the loss, is the estimate. A module, so any state (a baseline) is saved in checkpoints.
    """

    #: the name a latent family lists in ``estimators`` and the config group file is called
    name: str

    @abstractmethod
    def sample(self, q: Distribution) -> Tensor:
        """A sample of ``q`` (batch shape + event shape) carrying this estimator's gradient."""

    def surrogate(self, q: Distribution, z: Tensor, cost: Tensor) -> Tensor | None:
        """A per-image term whose gradient completes the estimate of ``grad E_q[cost]``; None if none."""
        return None
