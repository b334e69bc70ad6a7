"""Implicit reparameterization gradients (Figurnov, Mohamed & Mnih 2018)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Distribution

from vae_zoo.estimators.estimator import Estimator, elementwise

_TINY = torch.finfo(torch.float32).tiny


class ImplicitEstimator(Estimator):
    """``grad_phi z = -grad_phi F(z|phi) / q(z|phi)`` for any ``q`` whose CDF F is differentiable in phi.

    Implemented as ``z_hat = z - (F(z) - stop(F(z))) / stop(q(z))`` with ``z ~ q`` drawn without
    gradient: the bracket is exactly zero, so ``z_hat == z``, and autograd gives the implicit gradient.
    On the Normal it equals the pathwise ``dz/dmu = 1``, ``dz/dsigma = (z - mu) / sigma``.
    """

    name = "implicit"

    def sample(self, q: Distribution) -> Tensor:
        coordinates = elementwise(q)
        with torch.no_grad():
            z = coordinates.sample()
        cdf = coordinates.cdf(z)
        density = coordinates.log_prob(z).exp().detach().clamp_min(_TINY)
        return z - (cdf - cdf.detach()) / density
