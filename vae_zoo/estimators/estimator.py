"""The gradient-estimator contract: how a posterior sample carries gradient to the encoder."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from vae_zoo.estimators.requirements import Requirement


class Cost(NamedTuple):
    """The sample-dependent part of a loss: its value at the drawn ``z`` and the function that computed it,
    for estimators that evaluate the cost at other points (control variates at relaxed samples)."""

    value: Tensor  # per image, or per sample and image
    at: Callable[[Tensor], Tensor]  # the same cost at another z of the drawn sample's shape


class Estimator(ABC, nn.Module):
    """Draws the training sample ``z ~ q(z|x)`` so that ``grad E_q[f(z)]`` is estimated correctly.

    Pathwise estimators return a sample whose gradient is the estimate and add no surrogate. Others
    (score function) return a sample without gradient and a ``surrogate`` whose gradient, added to the
    loss, completes the estimate. A module, so any state (a baseline) is saved in checkpoints.

    ``requires`` is what the estimator needs of ``q`` (``vae_zoo.estimators.requirements``); the model
    checks it on its latent family's posterior at start-up, so adding an estimator is its ``.py`` and
    its ``conf/estimator/<name>.yaml`` alone. ``exact_samples`` says whether the sample lies in q's
    support, where ``log q(z)`` is defined (a relaxed categorical sample does not); objectives that
    evaluate densities at the sample (IWAE, the ELBO with a one-sample KL) need it.
    """

    requires: Requirement
    exact_samples: bool = True

    @abstractmethod
    def sample(self, q: Distribution, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        """``sample_shape + q.batch_shape + q.event_shape`` draws carrying this estimator's gradient."""

    def surrogate(self, q: Distribution, z: Tensor, cost: Cost) -> Tensor | None:
        """A term of ``cost.value``'s shape whose gradient completes the estimate of ``grad E_q[cost]``
        (``z`` may carry sample dims that ``cost.value`` has reduced over); None if there is none."""
        return None
