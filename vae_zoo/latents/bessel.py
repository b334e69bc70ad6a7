"""``log I_v(x)``, the modified Bessel function of the first kind of any order ``v >= 0``, differentiable in x.

torch has ``I_0`` and ``I_1`` only; the von Mises-Fisher distribution on the sphere in R^m needs order
``m/2 - 1``. Computed in float64 and returned in x's dtype:

    x < 100:   the power series  I_v(x) = sum_k (x/2)^(2k+v) / (k! Gamma(k+v+1)),  summed in log space
               over 160 terms (at x = 100 the terms past k = 130 are below 1e-38 of the largest, for any order);
    x >= 100:  for v > 0 Debye's uniform expansion (DLMF 10.41.3): with z = x/v, s = sqrt(1+z^2), p = 1/s,
               I_v(x) = e^(v (s + log(z / (1 + s)))) / (sqrt(2 pi v) s^(1/2)) (1 + sum_{k=1..4} u_k(p) / v^k),
               whose first omitted term is below 1e-10 relative there (p <= v/x); for v = 0 the large-argument
               series (DLMF 10.40.1) I_0(x) = e^x / sqrt(2 pi x) sum_k ((2k-1)!!)^2 / (k! (8x)^k), six terms.

The derivative is ``d log I_v / dx = I_(v+1)(x) / I_v(x) + v / x`` (DLMF 10.29.2), computed by the same function,
so gradients are as accurate as the values. ``tests/test_von_mises_fisher.py`` checks both against scipy.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

SERIES_BELOW = 100.0
SERIES_TERMS = 160

#: Debye's polynomials u_1 .. u_4 in p, as coefficients of p^0, p^1, ... (DLMF 10.41.10)
DEBYE = (
    (0, 3 / 24, 0, -5 / 24),
    (0, 0, 81 / 1152, 0, -462 / 1152, 0, 385 / 1152),
    (0, 0, 0, 30375 / 414720, 0, -369603 / 414720, 0, 765765 / 414720, 0, -425425 / 414720),
    (
        *(0,) * 4,
        4465125 / 39813120,
        0,
        -94121676 / 39813120,
        0,
        349922430 / 39813120,
        0,
        -446185740 / 39813120,
        0,
        185910725 / 39813120,
    ),
)
#: ((2k-1)!!)^2 / (k! 8^k), the large-argument series of I_0 for k = 1 .. 5
HANKEL_ZERO = tuple(
    math.prod((2 * j - 1) ** 2 for j in range(1, k + 1)) / (math.factorial(k) * 8**k) for k in range(1, 6)
)


def _polynomial(coefficients: tuple[float, ...], p: Tensor) -> Tensor:
    total = torch.zeros_like(p)
    for c in reversed(coefficients):
        total = total * p + c
    return total


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
    correction = sum(_polynomial(u, p) / order**k for k, u in enumerate(DEBYE, start=1))
    exponent = order * (s + torch.log(z / (1 + s)))
    return exponent - 0.5 * math.log(2 * math.pi * order) - 0.5 * torch.log(s) + torch.log1p(correction)


def _log_bessel_i(order: float, x: Tensor) -> Tensor:
    """In float64; each branch sees a harmless x where it is not used."""
    small = x < SERIES_BELOW
    series = _series(order, torch.where(small, x, 1.0))
    large = _large_argument(order, torch.where(small, SERIES_BELOW, x))
    return torch.where(small, series, large)


class _LogBesselI(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, order: float) -> Tensor:
        x64 = x.detach().double()
        value = _log_bessel_i(order, x64)
        ctx.save_for_backward(x64, value)
        ctx.order = order
        return value.to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        x64, value = ctx.saved_tensors
        ratio = torch.exp(_log_bessel_i(ctx.order + 1, x64) - value)
        return grad * (ratio + ctx.order / x64).to(grad.dtype), None


def log_bessel_i(order: float, x: Tensor) -> Tensor:
    """``log I_order(x)`` for ``x > 0``, elementwise, differentiable in ``x``."""
    if order < 0:
        raise ValueError(f"the order of I_v must be >= 0, got {order}")
    return _LogBesselI.apply(x, float(order))


def bessel_ratio(order: float, x: Tensor) -> Tensor:
    """``I_(order+1)(x) / I_order(x)``, differentiable in ``x``: the mean resultant length of a von Mises-Fisher
    distribution on the sphere in R^m with ``order = m/2 - 1``."""
    return torch.exp(log_bessel_i(order + 1, x) - log_bessel_i(order, x))
