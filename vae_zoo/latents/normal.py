"""Diagonal Gaussian latents of Kingma & Welling (2014)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Independent, Normal, register_kl

from vae_zoo.errors import ConfigError
from vae_zoo.latents.family import LatentFamily

MIN_SCALE = 1e-5


class StandardNormal(Normal):
    """``N(0, 1)`` per coordinate (built with zero ``loc`` and unit ``scale``): the Normal family's own prior,
    which the KL registry knows by its class."""


@register_kl(Normal, StandardNormal)
def kl_normal_standard_normal(q: Normal, p: StandardNormal) -> Tensor:
    """``KL(N(mu, sigma^2) || N(0, 1)) = (mu^2 + sigma^2 - 1) / 2 - log sigma`` per coordinate: torch's general
    Normal-Normal form divides by the prior's scale and takes a log of the ratio, which N(0, 1) does not need
    (``scripts/kl_speed.py``)."""
    return 0.5 * (q.loc.square() + q.scale.square() - 1) - q.scale.log()


class NormalLatent(LatentFamily):
    """``q(z|x) = N(mu(x), diag sigma(x)^2)`` with ``sigma = softplus(s) + 1e-5``; ``p(z) = N(0, I)``.

    Closed-form KL per image (``kl_normal_standard_normal``): ``sum_d (mu_d^2 + sigma_d^2 - 1) / 2 - log sigma_d``.
    """

    def __init__(self, in_features: int, dim: int = 32) -> None:
        super().__init__(in_features)
        if dim < 1:
            raise ConfigError(f"model.latent.dim={dim} must be >= 1")
        self.sample_features = dim
        self.head = nn.Linear(in_features, 2 * dim)
        self.register_buffer("prior_loc", torch.zeros(dim), persistent=False)
        self.register_buffer("prior_scale", torch.ones(dim), persistent=False)

    def posterior(self, features: Tensor) -> Independent:
        loc, raw_scale = self.head(features).chunk(2, dim=-1)
        return Independent(Normal(loc, F.softplus(raw_scale) + MIN_SCALE, validate_args=False), 1)

    def prior(self) -> Independent:
        return Independent(StandardNormal(self.prior_loc, self.prior_scale, validate_args=False), 1)
