"""Implicit reparameterization gradients (Figurnov, Mohamed & Mnih 2018)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Beta, Dirichlet, Distribution, Gamma

from vae_zoo.estimators.estimator import Estimator, elementwise

_TINY = torch.finfo(torch.float32).tiny

#: Families whose torch ``rsample`` already differentiates the sample implicitly: the backward of
#: ``_standard_gamma`` (and ``_dirichlet``) computes ``-dF/dalpha / q`` directly, with Figurnov et al.'s
#: approximations of the CDF's derivative, in one fused kernel. Beta has no torch CDF at all.
NATIVE_IMPLICIT = (Gamma, Beta, Dirichlet)


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


def sample_through_cdf(q: Distribution) -> Tensor:
    """``z ~ q`` drawn without gradient and returned unchanged; in the backward pass its gradient ``g``
    becomes ``-g / q(z)`` on ``F(z|phi)``, whose graph carries it to phi. The same gradient as
    ``z - (F(z) - stop(F(z))) / stop(q(z))``, in one node; needs a CDF differentiable in phi."""
    with torch.no_grad():
        z = q.sample()
        density = q.log_prob(z).exp().clamp_min(_TINY)
    return _ThroughCDF.apply(z, q.cdf(z), density)


class ImplicitEstimator(Estimator):
    """``grad_phi z = -grad_phi F(z|phi) / q(z|phi)`` for any ``q`` whose CDF F is differentiable in phi.

    Families in ``NATIVE_IMPLICIT`` use torch's ``rsample``, which computes this rule itself; others go
    through their CDF (``sample_through_cdf``). Tests check the two agree on the Gamma, and that on the
    Normal the rule equals the pathwise ``dz/dmu = 1``, ``dz/dsigma = (z - mu) / sigma``.
    """

    name = "implicit"

    def sample(self, q: Distribution) -> Tensor:
        coordinates = elementwise(q)
        if isinstance(coordinates, NATIVE_IMPLICIT):
            return q.rsample()
        return sample_through_cdf(coordinates)
