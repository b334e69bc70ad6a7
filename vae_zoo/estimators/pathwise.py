"""Explicit reparameterization (Kingma & Welling 2014)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Distribution

from vae_zoo.capabilities import RSAMPLE
from vae_zoo.estimators.estimator import Estimator


class PathwiseEstimator(Estimator):
    """``z = g(eps, phi)`` with parameter-free noise, e.g. ``z = mu + sigma * eps``, ``eps ~ N(0, I)``,
    so ``grad_phi E_q[f(z)] = E_eps[f'(z) * grad_phi g(eps, phi)]``: the distribution's own ``rsample``
    (for Gamma, Beta and Dirichlet torch's rsample is itself implicitly differentiated)."""

    requires = RSAMPLE
    reparameterized = True

    def sample(self, q: Distribution, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        return q.rsample(sample_shape)
