"""Explicit reparameterization (Kingma & Welling 2014)."""

from __future__ import annotations

from torch import Tensor
from torch.distributions import Distribution

from vae_zoo.estimators.estimator import Estimator


class PathwiseEstimator(Estimator):
    """``z = g(eps, phi)`` with parameter-free noise, e.g. ``z = mu + sigma * eps``, ``eps ~ N(0, I)``,
    so ``grad_phi E_q[f(z)] = E_eps[f'(z) * grad_phi g(eps, phi)]``."""

    name = "pathwise"

    def sample(self, q: Distribution) -> Tensor:
        return q.rsample()
