"""``log I_v(x)`` and ``A_v(x) = I_(v+1)(x) / I_v(x)``, the modified Bessel functions of the first kind of any order
``v >= 0``, differentiable in x.

torch has ``I_0`` and ``I_1`` only; the von Mises-Fisher distribution on the sphere in R^m needs order
``m/2 - 1``. Computed in float64 and returned in x's dtype:

    x < 100:   the power series  I_v(x) = sum_k (x/2)^(2k+v) / (k! Gamma(k+v+1)),  summed in log space
               over 160 terms (at x = 100 the terms past k = 130 are below 1e-38 of the largest, for any order);
    x >= 100:  for v > 0 Debye's uniform expansion (DLMF 10.41.3): with z = x/v, s = sqrt(1+z^2), p = 1/s,
               I_v(x) = e^(v (s + log(z / (1 + s)))) / (sqrt(2 pi v) s^(1/2)) (1 + sum_{k=1..4} u_k(p) / v^k),
               whose first omitted term is below 1e-10 relative there (p <= v/x); for v = 0 the large-argument
               series (DLMF 10.40.1) I_0(x) = e^x / sqrt(2 pi x) sum_k ((2k-1)!!)^2 / (k! (8x)^k), six terms.

The derivatives are closed forms in the same two values (DLMF 10.29.2), so a backward pass evaluates no Bessel
function: ``d log I_v / dx = A_v + v / x`` and ``d A_v / dx = 1 - A_v^2 - (2v + 1) A_v / x``.
``tests/test_von_mises_fisher.py`` checks the values against scipy and the derivatives against mpmath.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

SERIES_BELOW = 100.0
SERIES_TERMS = 160

#: Debye's polynomials (DLMF 10.41.10) as u_k(p) = p^k P_k(p^2), each P_k by its coefficients of 1, p^2, p^4, ...
DEBYE = (
    (3 / 24, -5 / 24),
    (81 / 1152, -462 / 1152, 385 / 1152),
    (30375 / 414720, -369603 / 414720, 765765 / 414720, -425425 / 414720),
    tuple(c / 39813120 for c in (4465125, -94121676, 349922430, -446185740, 185910725)),
)
#: ((2k-1)!!)^2 / (k! 8^k), the large-argument series of I_0 for k = 1 .. 5
HANKEL_ZERO = tuple(
    math.prod((2 * j - 1) ** 2 for j in range(1, k + 1)) / (math.factorial(k) * 8**k) for k in range(1, 6)
)


def _series(order: float, x: Tensor) -> Tensor:
    k = torch.arange(SERIES_TERMS, dtype=x.dtype, device=x.device)
    log_terms = (
        (2 * k + order) * torch.log(x / 2).unsqueeze(-1) - torch.lgamma(k + 1) - torch.lgamma(k + order + 1)
    )
    return torch.logsumexp(log_terms, dim=-1)


def _large_argument(order: float, x: Tensor) -> Tensor:
    if order == 0:
        correction = sum(c / x**k for k, c in enumerate(HANKEL_ZERO, start=1))
        return x - 0.5 * torch.log(2 * math.pi * x) + torch.log1p(correction)
    z = x / order
    s = torch.sqrt(1 + z.square())
    p = 1 / s
    p2, p_over_v = p.square(), p / order
    correction, power = torch.zeros_like(p), torch.ones_like(p)
    for coefficients in DEBYE:
        power = power * p_over_v
        polynomial = torch.zeros_like(p)
        for c in reversed(coefficients):
            polynomial = polynomial * p2 + c
        correction = correction + power * polynomial
    exponent = order * (s + torch.log(z / (1 + s)))
    return exponent - 0.5 * math.log(2 * math.pi * order) - 0.5 * torch.log(s) + torch.log1p(correction)


def _log_bessel_i(order: float, x: Tensor) -> Tensor:
    """In float64; each branch sees a harmless x where it is not used."""
    small = x < SERIES_BELOW
    series = _series(order, torch.where(small, x, 1.0))
    large = _large_argument(order, torch.where(small, SERIES_BELOW, x))
    return torch.where(small, series, large)


class _BesselTerms(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, order: float) -> tuple[Tensor, Tensor]:
        x64 = x.detach().double()
        log_i = _log_bessel_i(order, x64)
        ratio = torch.exp(_log_bessel_i(order + 1, x64) - log_i)
        ctx.save_for_backward(x64, ratio)
        ctx.order = order
        return log_i.to(x.dtype), ratio.to(x.dtype)

    @staticmethod
    def backward(ctx, grad_log_i: Tensor, grad_ratio: Tensor) -> tuple[Tensor, None]:
        x64, ratio = ctx.saved_tensors
        v = ctx.order
        d_log_i = ratio + v / x64
        d_ratio = 1 - ratio.square() - (2 * v + 1) * ratio / x64
        return (grad_log_i * d_log_i + grad_ratio * d_ratio).to(grad_log_i.dtype), None


def bessel_terms(order: float, x: Tensor) -> tuple[Tensor, Tensor]:
    """``(log I_order(x), I_(order+1)(x) / I_order(x))`` for ``x > 0``, elementwise, both differentiable in ``x``."""
    if order < 0:
        raise ValueError(f"the order of I_v must be >= 0, got {order}")
    return _BesselTerms.apply(x, float(order))
