"""The unit sphere S^(m-1) in R^m that hyperspherical latents live on: its constraint, area and uniform
distribution (the prior), the Householder reflection that turns a draw around ``e_1`` into one around a mean
direction, and the distributions rotationally symmetric about one (the von Mises-Fisher, the power spherical)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints


class _UnitSphere(constraints.Constraint):
    """Vectors of length 1 (to float32 rounding)."""

    event_dim = 1

    def check(self, value: Tensor) -> Tensor:
        return (value.norm(dim=-1) - 1).abs() < 1e-5


unit_sphere = _UnitSphere()


def log_sphere_area(m: int) -> float:
    """``log |S^(m-1)| = log(2 pi^(m/2) / Gamma(m/2))``."""
    return math.log(2) + 0.5 * m * math.log(math.pi) - math.lgamma(0.5 * m)


def householder_to(loc: Tensor, x: Tensor) -> Tensor:
    """``x`` drawn around ``e_1``, reflected to lie around ``loc``: with ``s = sign(loc_1)`` (+1 at 0) and
    ``h = loc + s e_1``, ``H x = x - 2 h (h^T x) / (h^T h)`` maps ``-s e_1`` to ``loc``, so ``x``'s first
    coordinate is multiplied by ``-s`` before; ``h^T h = 2 (1 + |loc_1|) >= 2``, so the reflection is
    well-conditioned."""
    s = torch.where(loc[..., :1] < 0, -1.0, 1.0).to(loc.dtype)
    h = torch.cat([loc[..., :1] + s, loc[..., 1:]], dim=-1)
    x = torch.cat([-s * x[..., :1], x[..., 1:]], dim=-1)
    return x - 2 * h * (h * x).sum(-1, keepdim=True) / h.square().sum(-1, keepdim=True)


class HypersphericalUniform(Distribution):
    """The uniform distribution on the unit sphere in R^m: density ``1 / |S^(m-1)|``, draws ``g / |g|`` for
    ``g ~ N(0, I_m)``. It has no parameters, so its draws carry no gradient to need."""

    arg_constraints: ClassVar[dict] = {}
    support = unit_sphere
    has_rsample = True

    def __init__(self, anchor: Tensor, validate_args=None) -> None:
        """``anchor``: any ``(m,)`` tensor, which gives the dimension, dtype and device."""
        self.anchor = anchor
        super().__init__(torch.Size(), anchor.shape, validate_args=validate_args)

    def log_prob(self, value: Tensor) -> Tensor:
        return torch.full(
            value.shape[:-1], -log_sphere_area(value.shape[-1]), dtype=value.dtype, device=value.device
        )

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        g = torch.randn(
            self._extended_shape(sample_shape), dtype=self.anchor.dtype, device=self.anchor.device
        )
        return g / g.norm(dim=-1, keepdim=True)


class RotationallySymmetric(Distribution, ABC):
    """A distribution on the unit sphere in R^m whose density depends on ``z`` through the cosine ``t = mu^T z``
    alone: ``loc`` = mu ``(..., m)`` of length 1, ``concentration`` ``(...)``; batch shape ``loc.shape[:-1]``,
    event ``(m,)``. A draw is ``z = H (t e_1 + sqrt(1 - t^2) (0, u))``: the cosine from its marginal
    (``cosines``), ``u`` uniform on S^(m-2) and ``H`` the reflection to ``mu`` (``householder_to``), computed in
    float64 and returned in the parameters' dtype; differentiable in ``mu`` through ``H`` and in the
    concentration through the cosine, which each family differentiates by the implicit rule."""

    support = unit_sphere
    has_rsample = True
    #: the sample is differentiated by the implicit rule (``vae_zoo.capabilities``)
    implicit_rsample = True

    def __init__(self, loc: Tensor, concentration: Tensor, validate_args=None) -> None:
        self.loc, self.concentration = loc, concentration
        super().__init__(loc.shape[:-1], loc.shape[-1:], validate_args=validate_args)

    @property
    def m(self) -> int:
        return self.loc.shape[-1]

    @abstractmethod
    def cosines(self, shape: torch.Size) -> tuple[Tensor, Tensor]:
        """Draws of ``t`` and ``sqrt(1 - t^2)``, each ``shape + (1,)`` in float64, ``t`` differentiable in the
        concentration."""

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        shape = self._extended_shape(sample_shape)
        t, sine = self.cosines(shape[:-1])
        u = torch.randn(*shape[:-1], self.m - 1, dtype=torch.float64, device=self.loc.device)
        u = u / u.norm(dim=-1, keepdim=True)
        z = householder_to(self.loc.double().expand(shape), torch.cat([t, sine * u], dim=-1))
        return z.to(self.loc.dtype)

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)
