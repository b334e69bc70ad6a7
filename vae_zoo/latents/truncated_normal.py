"""Truncated Normal latents on an interval, through the generic implicit rule (Figurnov et al. 2018)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Independent, register_kl

from vae_zoo.errors import ConfigError
from vae_zoo.latents.family import LatentFamily
from vae_zoo.latents.truncated_normal_distribution import LOG_SQRT_2PI, TruncatedNormal


@register_kl(TruncatedNormal, TruncatedNormal)
def kl_truncated_normal(q: TruncatedNormal, p: TruncatedNormal) -> Tensor:
    """On a common interval, ``KL(q || p) = -H(q) - E_q[log p(z)]
    = -H(q) + (Var_q[z] + (E_q[z] - loc_p)^2) / (2 scale_p^2) + log(sqrt(2 pi) scale_p Z_p)`` per coordinate."""
    if (q.low, q.high) != (p.low, p.high):
        raise NotImplementedError("truncated Normals on different intervals")
    second_moment = (q.variance + (q.mean - p.loc).square()) / p.scale.square()
    return -q.entropy() + 0.5 * second_moment + LOG_SQRT_2PI + torch.log(p.scale) + p.log_mass


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
