"""The von Mises CDF with gradients in the angle and the concentration, for implicit reparameterization.

torch's ``VonMises`` has neither ``rsample`` nor ``cdf``. For ``x = z - mu`` reduced to [-pi, pi) and
``m`` the number of whole turns removed, ``F(z) = F0(x) + m`` with (Hill 1977, as TensorFlow Probability
computes it)
    kappa < 10.5:  F0(x) = 1/2 + x / (2 pi) + (1/pi) sum_{n=1}^{20} (I_n(kappa) / I_0(kappa)) sin(n x) / n
                   with the Bessel ratios by the backward recurrence r_n = 1 / (2n / kappa + r_{n+1});
    kappa >= 10.5: F0(x) = Phi(xi), a corrected normal approximation in
                   s = sqrt(2 / pi) sin(x / 2) / i0e(kappa).
``dF/dx`` is the density ``exp(kappa (cos x - 1)) / (2 pi i0e(kappa))`` (so ``dF/dmu = -q(z)`` and the
implicit rule gives ``dz/dmu = 1`` exactly); ``dF/dkappa`` is differentiated through the chosen branch.
``scripts/von_mises_cdf_accuracy.py`` measures F against numerical integration of the density.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import VonMises, constraints

SERIES_BELOW = 10.5
SERIES_TERMS = 20


def _series(x: Tensor, kappa: Tensor) -> Tensor:
    ratio = torch.zeros_like(x)
    total = torch.zeros_like(x)
    for n in range(SERIES_TERMS, 0, -1):
        ratio = 1 / (2 * n / kappa + ratio)
        total = ratio * (torch.sin(n * x) / n + total)
    return 0.5 + x / (2 * math.pi) + total / math.pi


def _normal_approximation(x: Tensor, kappa: Tensor) -> Tensor:
    s = math.sqrt(2 / math.pi) / torch.special.i0e(kappa) * torch.sin(0.5 * x)
    s2 = s.square()
    c = 24 * kappa
    xi = s - s2 * s / ((c - 2 * s2 - 16) / 3 - (s2.square() + 1.75 * s2 + 83.5) / (c - 53 - s2)) ** 2
    return torch.special.ndtr(xi)


def _centred_cdf(x: Tensor, kappa: Tensor) -> Tensor:
    """``F0(x)`` for ``x`` in [-pi, pi); each branch sees a harmless kappa where it is not used, so
    neither produces a NaN that ``where`` would pass into the gradient."""
    use_series = kappa < SERIES_BELOW
    series = _series(x, torch.where(use_series, kappa, 1.0))
    normal = _normal_approximation(x, torch.where(use_series, SERIES_BELOW, kappa))
    return torch.where(use_series, series, normal).clamp(0, 1)


class _VonMisesCDF(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, kappa: Tensor) -> Tensor:
        x, kappa = torch.broadcast_tensors(x, kappa)
        turns = torch.round(x / (2 * math.pi))
        x = x - 2 * math.pi * turns
        with torch.enable_grad():
            leaf = kappa.detach().requires_grad_()
            centred = _centred_cdf(x, leaf)
            (d_kappa,) = torch.autograd.grad(centred.sum(), leaf)
        density = torch.exp(kappa * (torch.cos(x) - 1)) / (2 * math.pi * torch.special.i0e(kappa))
        ctx.save_for_backward(density, d_kappa)
        return centred.detach() + turns

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor]:
        density, d_kappa = ctx.saved_tensors
        return grad * density, grad * d_kappa


def von_mises_cdf(x: Tensor, kappa: Tensor) -> Tensor:
    """``F(x)`` of the von Mises with mean 0 and concentration ``kappa`` on the real line (each turn adds 1),
    differentiable in ``x`` and ``kappa``."""
    return _VonMisesCDF.apply(x, kappa)


class DifferentiableCDFVonMises(VonMises):
    """``VonMises(loc, concentration)`` with a ``cdf`` differentiable in both parameters, and its support
    said as the interval its samples lie in: torch declares the real line (the density is periodic), which
    would let a prior or a flow that needs a density on all of R^D pair with angles."""

    has_differentiable_cdf = True
    support = constraints.interval(-math.pi, math.pi)

    def cdf(self, value: Tensor) -> Tensor:
        return von_mises_cdf(value - self.loc, self.concentration)
