"""Implicit reparameterization gradients (Figurnov, Mohamed & Mnih 2018)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Distribution

from vae_zoo.capabilities import IMPLICIT, coordinates, has_implicit_rsample
from vae_zoo.estimators.estimator import Estimator

_TINY = torch.finfo(torch.float32).tiny


class _ThroughCDF(torch.autograd.Function):
    """Returns ``z``; its gradient ``g`` goes into the CDF's graph as ``-g / q(z)``."""

    @staticmethod
    def forward(ctx, z: Tensor, cdf: Tensor, density: Tensor) -> Tensor:
        ctx.save_for_backward(density)
        return z.clone()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[None, Tensor, None]:
        (density,) = ctx.saved_tensors
        return None, -grad / density, None


def sample_through_cdf(q: Distribution, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
    """``z ~ q`` drawn without gradient and returned unchanged; in the backward pass its gradient ``g``
    becomes ``-g / q(z)`` on ``F(z|phi)``, whose graph carries it to phi. The same gradient as
    ``z - (F(z) - stop(F(z))) / stop(q(z))``, in one node; needs a CDF differentiable in phi."""
    with torch.no_grad():
        z = q.sample(sample_shape)
        density = q.log_prob(z).exp().clamp_min(_TINY)
    return _ThroughCDF.apply(z, q.cdf(z), density)


class ImplicitEstimator(Estimator):
    """``grad_phi z = -grad_phi F(z|phi) / q(z|phi)`` for any ``q`` whose CDF F is differentiable in phi.

    torch's Gamma, Beta and Dirichlet ``rsample`` compute this rule themselves (with torch's own
    approximations of dF/dalpha), so those go through ``rsample``; every other family goes through its
    CDF (``sample_through_cdf``). Tests check the two agree on the Gamma, and that on the Normal the rule
    equals the pathwise ``dz/dmu = 1``, ``dz/dsigma = (z - mu) / sigma``.
    """

    requires = IMPLICIT
    reparameterized = True

    def sample(self, q: Distribution, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        if has_implicit_rsample(q):
            return q.rsample(sample_shape)
        return sample_through_cdf(coordinates(q), sample_shape)
