"""Gamma latents for implicit reparameterization (Figurnov, Mohamed & Mnih 2018)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Independent

from vae_zoo.errors import ConfigError
from vae_zoo.latents.family import LatentFamily
from vae_zoo.latents.gamma_cdf import DifferentiableCDFGamma


class GammaLatent(LatentFamily):
    """``q(z|x) = prod_d Gamma(z_d; alpha_d(x), beta_d(x))``, ``alpha, beta = softplus(.) + floor``;
    ``p(z) = prod_d Gamma(alpha0, beta0)``.

    The posterior has torch's implicitly differentiated ``rsample`` and a CDF differentiable in both
    parameters (``gamma_cdf.py``). Closed-form KL per coordinate (``psi`` the digamma function):
    ``(a - a0) psi(a) - lnG(a) + lnG(a0) + a0 (ln b - ln b0) + a (b0 - b) / b``.
    """

    def __init__(
        self,
        in_features: int,
        dim: int = 10,
        prior_concentration: float = 0.3,
        prior_rate: float = 0.3,
        floor: float = 1e-3,
    ) -> None:
        super().__init__(in_features)
        if dim < 1:
            raise ConfigError(f"model.latent.dim={dim} must be >= 1")
        if prior_concentration <= 0 or prior_rate <= 0 or floor <= 0:
            raise ConfigError(
                f"model.latent.prior_concentration={prior_concentration}, prior_rate={prior_rate} "
                f"and floor={floor} must all be > 0"
            )
        self.sample_features = dim
        self.floor = floor
        self.head = nn.Linear(in_features, 2 * dim)
        self.register_buffer(
            "prior_concentration", torch.full((dim,), float(prior_concentration)), persistent=False
        )
        self.register_buffer("prior_rate", torch.full((dim,), float(prior_rate)), persistent=False)

    def posterior(self, features: Tensor) -> Independent:
        raw_concentration, raw_rate = self.head(features).chunk(2, dim=-1)
        concentration = F.softplus(raw_concentration) + self.floor
        rate = F.softplus(raw_rate) + self.floor
        return Independent(DifferentiableCDFGamma(concentration, rate, validate_args=False), 1)

    def prior(self) -> Independent:
        return Independent(
            DifferentiableCDFGamma(self.prior_concentration, self.prior_rate, validate_args=False), 1
        )
