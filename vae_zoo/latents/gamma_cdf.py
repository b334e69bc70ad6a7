"""The Gamma CDF with gradients in both arguments, for implicit reparameterization of Gamma latents.

``P(a, x) = gamma(a, x) / Gamma(a)`` (regularized lower incomplete gamma). ``torch.special.gammainc``
computes it but has no gradient in ``a``. Here
    dP/dx = x^(a-1) e^(-x) / Gamma(a)                      (the standard Gamma density)
    dP/da = -(dx/da) * x^(a-1) e^(-x) / Gamma(a)
where ``dx/da`` is the implicit derivative of a standard-Gamma sample ``x`` in its shape, which torch
computes for ``Gamma.rsample`` (``torch._standard_gamma_grad``, with torch's own approximations: a
Taylor series for small x, a Rice saddle-point expansion for large a, a bivariate rational fit elsewhere).
``scripts/gamma_cdf_accuracy.py`` measures dP/da against float64 finite differences of P.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Gamma


def standard_gamma_density(a: Tensor, x: Tensor) -> Tensor:
    return torch.exp(torch.xlogy(a - 1, x) - x - torch.lgamma(a))


class _RegularizedGammaP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: Tensor, x: Tensor) -> Tensor:
        a, x = torch.broadcast_tensors(a, x)
        ctx.save_for_backward(a, x)
        return torch.special.gammainc(a, x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor]:
        a, x = ctx.saved_tensors
        density = standard_gamma_density(a, x)
        return -grad * torch._standard_gamma_grad(a, x) * density, grad * density


def regularized_gamma_p(a: Tensor, x: Tensor) -> Tensor:
    """``P(a, x)``, differentiable in ``a`` and ``x``."""
    return _RegularizedGammaP.apply(a, x)


class DifferentiableCDFGamma(Gamma):
    """``Gamma(concentration, rate)`` whose ``cdf`` is differentiable in both parameters."""

    def cdf(self, value: Tensor) -> Tensor:
        return regularized_gamma_p(self.concentration, self.rate * value)
