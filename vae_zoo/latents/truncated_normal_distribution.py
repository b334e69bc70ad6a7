"""The truncated Normal distribution, with its mass and moments in log space: right for any location.

With ``a = (low - loc) / scale``, ``b = (high - loc) / scale`` and ``Z = Phi(b) - Phi(a)``, the mass cancels to
zero in floating point once the interval lies several scales into a tail (``Phi(50) = 1`` in float64). By the
symmetry ``Phi(-t) = 1 - Phi(t)`` the interval is mirrored where it lies right of ``loc`` (``a > 0``), so that both
ends lie where ``log Phi`` is accurate (``a' = -b <= b' = -a <= 0``; scipy and TensorFlow Probability do the
same), and

    log Z = log Phi(b') + log(1 - exp(log Phi(a') - log Phi(b')))
    F(z) = (Phi(t) - Phi(a)) / Z  (mirrored: (Phi(b') - Phi(-t)) / Z),   t = (z - loc) / scale
    E[z] = loc + scale (r_a - r_b),          r_u = phi(u) / Z = exp(log phi(u) - log Z)
    Var[z] = scale^2 (1 + a r_a - b r_b - (r_a - r_b)^2)
    H = log(sqrt(2 pi e) scale) + log Z + (a r_a - b r_b) / 2.

Deep in a tail the moments cancel in their last terms (at 50 scales ``Var / scale^2 ~ 4e-4`` is
``1 + 2501 - 2502``), and so does ``t^2 / 2 + log Z`` in the density, so everything is computed in float64 from
the parameters (exact in float64 whatever their dtype) and returned in the parameters' dtype. Samples come from
the inverse CDF in log space (``log_ndtr_inverse``: Newton steps on ``log Phi``), without gradient; there is no
``rsample``: the implicit rule differentiates ``cdf``, which autograd follows to ``loc`` and ``scale``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
#: below this ``log Phi`` the inverse starts from the tail's asymptotic form (``exp`` of it still has 13 digits)
DIRECT_INVERSE_ABOVE = -30.0


def log1mexp(x: Tensor) -> Tensor:
    """``log(1 - exp(x))`` for ``x < 0``, accurate at both ends (Maechler 2012); both branches stay finite."""
    return torch.where(x > -math.log(2), torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def log_phi(t: Tensor) -> Tensor:
    """The standard Normal's log-density."""
    return -0.5 * t.square() - LOG_SQRT_2PI


def log_ndtr_inverse(y: Tensor) -> Tensor:
    """``x`` with ``log Phi(x) = y`` (``y <= 0``), in float64: ``Phi^-1(exp(y))`` where that is accurate, else the
    tail's asymptotic root of ``x^2 = -2y - 2 log(-x) - log(2 pi)`` refined by Newton steps on ``log Phi``."""
    direct = torch.special.ndtri(y.exp())
    x = -torch.sqrt(-2 * y.clamp(max=DIRECT_INVERSE_ABOVE))
    x = -torch.sqrt(-2 * y.clamp(max=DIRECT_INVERSE_ABOVE) - 2 * torch.log(-x) - 2 * LOG_SQRT_2PI)
    for _ in range(4):
        log_cdf = torch.special.log_ndtr(x)
        x = x - (log_cdf - y) / torch.exp(log_phi(x) - log_cdf)
    return torch.where(y > DIRECT_INVERSE_ABOVE, direct, x)


class TruncatedNormal(Distribution):
    """``N(loc, scale^2)`` restricted to ``[low, high]``, for any ``loc`` (see the module's formulas)."""

    arg_constraints: ClassVar[dict] = {"loc": constraints.real, "scale": constraints.positive}
    has_differentiable_cdf = True

    def __init__(self, loc: Tensor, scale: Tensor, low: float, high: float, validate_args=None) -> None:
        self.loc, self.scale = torch.broadcast_tensors(loc, scale)
        self.low, self.high = low, high
        self.loc64, self.scale64 = self.loc.double(), self.scale.double()  # every formula below in float64
        self.a = (low - self.loc64) / self.scale64
        self.b = (high - self.loc64) / self.scale64
        self.mirrored = self.a > 0  # the interval lies right of loc: mirror it into the left tail
        a_near = torch.where(self.mirrored, -self.b, self.a)  # a' <= b' <= 0 where mirrored
        b_near = torch.where(self.mirrored, -self.a, self.b)
        self.log_cdf_a, self.log_cdf_b = torch.special.log_ndtr(a_near), torch.special.log_ndtr(b_near)
        self.log_mass = self.log_cdf_b + log1mexp(self.log_cdf_a - self.log_cdf_b)
        super().__init__(self.loc.shape, validate_args=validate_args)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self):
        return constraints.interval(self.low, self.high)

    def _ratios(self) -> tuple[Tensor, Tensor]:
        """``r_a = phi(a) / Z`` and ``r_b = phi(b) / Z``."""
        return torch.exp(log_phi(self.a) - self.log_mass), torch.exp(log_phi(self.b) - self.log_mass)

    def _tails(self, r_a: Tensor, r_b: Tensor) -> Tensor:
        """``a r_a - b r_b``, with ``u r_u = 0`` where an end is infinite (``r_u = 0`` there)."""
        return torch.nan_to_num(self.a * r_a) - torch.nan_to_num(self.b * r_b)

    @property
    def mean(self) -> Tensor:
        r_a, r_b = self._ratios()
        return (self.loc64 + self.scale64 * (r_a - r_b)).to(self.loc.dtype)

    @property
    def variance(self) -> Tensor:
        r_a, r_b = self._ratios()
        return (self.scale64.square() * (1 + self._tails(r_a, r_b) - (r_a - r_b).square())).to(self.loc.dtype)

    def entropy(self) -> Tensor:
        entropy = LOG_SQRT_2PI + 0.5 + self.scale64.log() + self.log_mass + 0.5 * self._tails(*self._ratios())
        return entropy.to(self.loc.dtype)

    def cdf(self, value: Tensor) -> Tensor:
        t = (value.double() - self.loc64) / self.scale64
        log_cdf_t = torch.special.log_ndtr(torch.where(self.mirrored, -t, t))
        below = torch.exp(log_cdf_t - self.log_mass) - torch.exp(self.log_cdf_a - self.log_mass)
        above = torch.exp(self.log_cdf_b - self.log_mass) - torch.exp(log_cdf_t - self.log_mass)
        return torch.where(self.mirrored, above, below).clamp(0, 1).to(self.loc.dtype)

    def log_prob(self, value: Tensor) -> Tensor:
        t = (value.double() - self.loc64) / self.scale64
        return (log_phi(t) - self.scale64.log() - self.log_mass).to(self.loc.dtype)

    @torch.no_grad()
    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        shape = self._extended_shape(sample_shape)
        tiny = torch.finfo(torch.float64).tiny
        u = torch.rand(shape, dtype=torch.float64, device=self.loc.device).clamp_min(tiny)
        level = torch.logaddexp(self.log_cdf_a.expand(shape), u.log() + self.log_mass)  # log Phi of the draw
        near = log_ndtr_inverse(level)  # in [a', b']
        t = torch.where(self.mirrored, -near, near)
        return (self.loc64 + self.scale64 * t).clamp(self.low, self.high).to(self.loc.dtype)
