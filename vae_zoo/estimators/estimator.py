"""The gradient-estimator contract: how a posterior sample carries gradient to the encoder."""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor
from torch.distributions import Distribution


class Estimator(ABC):
    """Draws the training sample ``z ~ q(z|x)`` so that ``grad E_q[f(z)]`` is estimated correctly.

    Pathwise estimators return a sample whose gradient is the estimate and add no surrogate term.
    """

    #: the name a latent family lists in ``estimators`` and the config group file is called
    name: str

    @abstractmethod
    def sample(self, q: Distribution) -> Tensor:
        """A sample of ``q`` (batch shape + event shape) carrying this estimator's gradient."""
