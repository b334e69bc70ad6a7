"""REINFORCE with the leave-one-out baseline (Kool, van Hoof & Welling 2019)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Distribution

from vae_zoo.capabilities import SCORE
from vae_zoo.errors import ConfigError
from vae_zoo.estimators.estimator import Cost, Draw, Estimator, joint_log_prob


class ReinforceLOO(Estimator):
    """``g = 1/k sum_j (c_j - b_j) grad log q(z_j)`` with ``b_j = 1/(k-1) sum_{i != j} c_i``, for k independent
    draws per image: each draw's baseline is the mean cost of the others, which does not depend on it, so
    the estimate is unbiased; equal to ``1/(k-1) sum_j (c_j - mean c) grad log q(z_j)``. Any family with a
    log-density; the objective averages its cost over the k draws (``draws = k``)."""

    requires = SCORE

    def __init__(self, k: int = 2) -> None:
        super().__init__()
        if k < 2:
            raise ConfigError(
                f"model.estimator.k={k} must be >= 2 (the leave-one-out baseline needs two draws)"
            )
        self.k = self.draws = k

    def sample(self, q: Distribution, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        return q.sample((self.k, *sample_shape))

    def surrogate(self, q: Distribution, draw: Draw, cost: Cost) -> Tensor:
        value = cost.value.detach()
        baseline = (value.sum(0, keepdim=True) - value) / (self.k - 1)
        return (value - baseline) * joint_log_prob(q, draw.value, value, self.draws)
