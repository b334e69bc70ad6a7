"""Diagonal Gaussian latents of Kingma & Welling (2014)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Independent, Normal

from vae_zoo.errors import ConfigError
from vae_zoo.latents.family import LatentFamily

MIN_SCALE = 1e-5


class NormalLatent(LatentFamily):
    """``q(z|x) = N(mu(x), diag sigma(x)^2)`` with ``sigma = softplus(s) + 1e-5``; ``p(z) = N(0, I)``.

    Closed-form KL per image: ``sum_d (mu_d^2 + sigma_d^2 - 1) / 2 - log sigma_d``.
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
        return Independent(Normal(self.prior_loc, self.prior_scale, validate_args=False), 1)

    def kl(self, q: Independent) -> Tensor:
        loc, scale = q.base_dist.loc, q.base_dist.scale
        return (0.5 * (loc.square() + scale.square() - 1) - scale.log()).sum(-1)
