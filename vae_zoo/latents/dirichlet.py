"""Dirichlet latents on the simplex, for implicit reparameterization (Figurnov, Mohamed & Mnih 2018)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Dirichlet, Independent

from vae_zoo.errors import ConfigError
from vae_zoo.latents.family import LatentFamily


class DirichletLatent(LatentFamily):
    """``q(z|x) = prod_n Dir(z_n; alpha_n(x))`` over N points on the K-simplex (topic-like proportions),
    ``alpha = softplus(.) + floor``; ``p(z) = prod_n Dir(alpha0, ..., alpha0)``. A sample is ``(..., N, K)``;
    the decoder reads it flattened to ``N * K``.

    torch's ``Dirichlet.rsample`` differentiates the sample implicitly (through its Gamma draws).
    Closed-form KL per point, torch's registered Dirichlet-Dirichlet KL (``S = sum_k alpha_k``, ``S0 = K alpha0``, ``psi`` the digamma function):
    ``lnG(S) - sum_k lnG(alpha_k) - lnG(S0) + K lnG(alpha0) + sum_k (alpha_k - alpha0)(psi(alpha_k) - psi(S))``.
    """

    def __init__(
        self, in_features: int, n: int = 10, k: int = 5, prior_concentration: float = 0.3, floor: float = 1e-3
    ) -> None:
        super().__init__(in_features)
        if n < 1 or k < 2:
            raise ConfigError(f"model.latent.n={n} must be >= 1 and model.latent.k={k} >= 2")
        if prior_concentration <= 0 or floor <= 0:
            raise ConfigError(
                f"model.latent.prior_concentration={prior_concentration} and floor={floor} must be > 0"
            )
        self.n, self.k = n, k
        self.sample_features = n * k
        self.floor = floor
        self.head = nn.Linear(in_features, n * k)
        self.register_buffer(
            "prior_concentration", torch.full((n, k), float(prior_concentration)), persistent=False
        )

    def posterior(self, features: Tensor) -> Independent:
        concentration = F.softplus(self.head(features).unflatten(-1, (self.n, self.k))) + self.floor
        return Independent(Dirichlet(concentration, validate_args=False), 1)

    def prior(self) -> Independent:
        return Independent(Dirichlet(self.prior_concentration, validate_args=False), 1)

    def decoder_input(self, z: Tensor) -> Tensor:
        return z.flatten(-2)
