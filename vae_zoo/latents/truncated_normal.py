"""Truncated Normal latents on an interval, through the generic implicit rule (Figurnov et al. 2018)."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, constraints, register_kl

from vae_zoo.errors import ConfigError
from vae_zoo.latents.family import LatentFamily

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _phi(t: Tensor) -> Tensor:
    return torch.exp(-0.5 * t.square() - LOG_SQRT_2PI)


class TruncatedNormal(Distribution):
    """``N(loc, scale^2)`` restricted to ``[low, high]``. With ``a = (low - loc) / scale``,
    ``b = (high - loc) / scale``, ``Z = Phi(b) - Phi(a)``:
        F(z) = (Phi((z - loc) / scale) - Phi(a)) / Z          (differentiable in loc and scale: autograd)
        E[z] = loc + scale (phi(a) - phi(b)) / Z
        Var[z] = scale^2 (1 + (a phi(a) - b phi(b)) / Z - ((phi(a) - phi(b)) / Z)^2)
        H = log(sqrt(2 pi e) scale Z) + (a phi(a) - b phi(b)) / (2 Z).
    Sampled by the inverse CDF, ``loc + scale Phi^-1(Phi(a) + u Z)``, without gradient; it has no
    ``rsample``, and reaches its parameters through the implicit rule on ``cdf``.
    """

    arg_constraints: ClassVar[dict] = {"loc": constraints.real, "scale": constraints.positive}
    has_differentiable_cdf = True

    def __init__(self, loc: Tensor, scale: Tensor, low: float, high: float, validate_args=None) -> None:
        self.loc, self.scale = torch.broadcast_tensors(loc, scale)
        self.low, self.high = low, high
        self.a = (low - self.loc) / self.scale
        self.b = (high - self.loc) / self.scale
        self.cdf_a = torch.special.ndtr(self.a)
        self.mass = (torch.special.ndtr(self.b) - self.cdf_a).clamp_min(torch.finfo(self.loc.dtype).tiny)
        super().__init__(self.loc.shape, validate_args=validate_args)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self):
        return constraints.interval(self.low, self.high)

    def _moments_terms(self) -> tuple[Tensor, Tensor]:
        phi_a, phi_b = _phi(self.a), _phi(self.b)
        return (phi_a - phi_b) / self.mass, (self.a * phi_a - self.b * phi_b) / self.mass

    @property
    def mean(self) -> Tensor:
        return self.loc + self.scale * self._moments_terms()[0]

    @property
    def variance(self) -> Tensor:
        first, second = self._moments_terms()
        return self.scale.square() * (1 + second - first.square())

    def entropy(self) -> Tensor:
        return LOG_SQRT_2PI + 0.5 + torch.log(self.scale * self.mass) + 0.5 * self._moments_terms()[1]

    def cdf(self, value: Tensor) -> Tensor:
        return ((torch.special.ndtr((value - self.loc) / self.scale) - self.cdf_a) / self.mass).clamp(0, 1)

    def log_prob(self, value: Tensor) -> Tensor:
        t = (value - self.loc) / self.scale
        return -0.5 * t.square() - LOG_SQRT_2PI - torch.log(self.scale * self.mass)

    @torch.no_grad()
    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        u = torch.rand(self._extended_shape(sample_shape), dtype=self.loc.dtype, device=self.loc.device)
        p = (self.cdf_a + u * self.mass).clamp(torch.finfo(u.dtype).tiny, 1 - torch.finfo(u.dtype).eps)
        return (self.loc + self.scale * torch.special.ndtri(p)).clamp(self.low, self.high)


@register_kl(TruncatedNormal, TruncatedNormal)
def kl_truncated_normal(q: TruncatedNormal, p: TruncatedNormal) -> Tensor:
    """On a common interval, ``KL(q || p) = -H(q) - E_q[log p(z)]
    = -H(q) + (Var_q[z] + (E_q[z] - loc_p)^2) / (2 scale_p^2) + log(sqrt(2 pi) scale_p Z_p)`` per coordinate."""
    if (q.low, q.high) != (p.low, p.high):
        raise NotImplementedError("truncated Normals on different intervals")
    second_moment = (q.variance + (q.mean - p.loc).square()) / p.scale.square()
    return -q.entropy() + 0.5 * second_moment + LOG_SQRT_2PI + torch.log(p.scale * p.mass)


class TruncatedNormalLatent(LatentFamily):
    """``q(z|x) = prod_d TN(z_d; mu_d(x), sigma_d(x); [low, high])`` with ``mu`` inside the interval
    (``low + (high - low) sigmoid(.)``) and ``sigma = softplus(.) + floor``; ``p(z)`` the standard Normal
    truncated to the same interval. Closed-form KL per coordinate (``kl_truncated_normal``; ``Z0`` the prior's
    mass on the interval): ``KL = -H(q) + (Var_q[z] + E_q[z]^2) / 2 + log(sqrt(2 pi) Z0)``.
    """

    def __init__(
        self, in_features: int, dim: int = 10, low: float = -2.0, high: float = 2.0, floor: float = 1e-3
    ) -> None:
        super().__init__(in_features)
        if dim < 1:
            raise ConfigError(f"model.latent.dim={dim} must be >= 1")
        if not low < high or floor <= 0:
            raise ConfigError(f"model.latent.low={low} must be < high={high}, and floor={floor} > 0")
        self.sample_features = dim
        self.low, self.high, self.floor = float(low), float(high), floor
        self.head = nn.Linear(in_features, 2 * dim)
        self.register_buffer("prior_loc", torch.zeros(dim), persistent=False)
        self.register_buffer("prior_scale", torch.ones(dim), persistent=False)

    def posterior(self, features: Tensor) -> Independent:
        raw_loc, raw_scale = self.head(features).chunk(2, dim=-1)
        loc = self.low + (self.high - self.low) * torch.sigmoid(raw_loc)
        scale = F.softplus(raw_scale) + self.floor
        return Independent(TruncatedNormal(loc, scale, self.low, self.high), 1)

    def prior(self) -> Independent:
        return Independent(TruncatedNormal(self.prior_loc, self.prior_scale, self.low, self.high), 1)
