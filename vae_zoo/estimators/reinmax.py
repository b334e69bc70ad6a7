"""ReinMax: straight-through with Heun's second-order rule in place of forward Euler (Liu et al. 2023)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Distribution

from vae_zoo.capabilities import DISCRETE_LOGITS
from vae_zoo.errors import ConfigError
from vae_zoo.estimators.estimator import Estimator
from vae_zoo.estimators.relaxation import Relaxation, relaxation


def reinmax(relaxing: Relaxation, hard: Tensor, temperature: Tensor | float) -> Tensor:
    """The exact sample ``D`` forward; backward ``(2 J(pi_1) - J(pi_0) / 2) dz``, where ``pi_0 = softmax(t)``,
    ``pi_1 = (softmax(t / tau) + D) / 2`` and ``J(p) = diag(p) - p p^T`` is the softmax's Jacobian at ``p``
    (binary latents: ``sigmoid``, ``J(s) = s (1 - s)``). A function of ``D`` alone: no noise enters the
    gradient but the draw's."""
    first = relaxing.relax(relaxing.logits, 1.0)
    midpoint = relaxing.shifted_to((relaxing.relax(relaxing.logits, temperature) + hard) / 2)
    slope = 2 * midpoint - first / 2
    return hard + (slope - slope.detach())


class ReinMax(Estimator):
    """Forward the exact sample ``D`` (Gumbel-Max, or a logistic threshold); backward ``reinmax``'s gradient.

    Plain straight-through's backward ``J(pi_0) grad f(D)`` (Bengio et al. 2013) is, in expectation, forward
    Euler's approximation of ``f(I_i) - f(D)`` by ``grad f(D)^T (I_i - D)``, exact for costs linear in ``D``.
    ReinMax's is Heun's, the mean of the slopes at both ends, ``(grad f(I_i) + grad f(D))^T (I_i - D) / 2``:
    at ``tau = 1`` its mean is the exact gradient for every cost quadratic in the one-hot ``D`` (a test sums
    over every configuration), and biased beyond (second-order accurate). Liu et al. recommend ``tau >= 1``;
    ``temperature`` follows callbacks.temperature when present. Binary and categorical latents."""

    requires = DISCRETE_LOGITS
    unbiased = False

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        if not temperature > 0:
            raise ConfigError(
                f"model.estimator.temperature={temperature} must be > 0 (1 or more, Liu et al.)"
            )
        self.temperature = temperature

    def sample(self, q: Distribution, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        relaxing = relaxation(q)
        return reinmax(relaxing, relaxing.hard(relaxing.perturb(sample_shape)), self.temperature)
