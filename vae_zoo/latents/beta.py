"""Beta latents on the unit cube, for implicit reparameterization (Figurnov, Mohamed & Mnih 2018)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Beta, Independent

from vae_zoo.errors import ConfigError
from vae_zoo.latents.family import LatentFamily


class OpenIntervalBeta(Beta):
    """torch's ``Beta`` with samples kept inside (0, 1): a draw for a small ``concentration0`` rounds to
    exactly 1 (in float32 anything above ``1 - 6e-8``), where ``log_prob`` is infinite. The clamp moves
    such a draw by at most one floating-point step below 1 and has zero gradient there; draws near 0 are
    already at least the smallest normal number."""

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        z = super().rsample(sample_shape)
        return z.clamp(max=1 - torch.finfo(z.dtype).eps / 2)


class BetaLatent(LatentFamily):
    """``q(z|x) = prod_d Beta(z_d; a_d(x), b_d(x))``, ``a, b = softplus(.) + floor``;
    ``p(z) = prod_d Beta(a0, b0)``, by default ``U(0, 1)``.

    torch's ``Beta.rsample`` differentiates the sample implicitly (through its Gamma draws). Closed-form
    KL per coordinate, torch's registered Beta-Beta KL (``B`` the Beta function, ``psi`` digamma, ``s = a + b``):
    ``ln B(a0, b0) - ln B(a, b) + (a - a0) psi(a) + (b - b0) psi(b) + (a0 + b0 - s) psi(s)``.
    """

    def __init__(
        self,
        in_features: int,
        dim: int = 10,
        prior_concentration1: float = 1.0,
        prior_concentration0: float = 1.0,
        floor: float = 1e-3,
    ) -> None:
        super().__init__(in_features)
        if dim < 1:
            raise ConfigError(f"model.latent.dim={dim} must be >= 1")
        if prior_concentration1 <= 0 or prior_concentration0 <= 0 or floor <= 0:
            raise ConfigError(
                f"model.latent.prior_concentration1={prior_concentration1}, prior_concentration0="
                f"{prior_concentration0} and floor={floor} must all be > 0"
            )
        self.sample_features = dim
        self.floor = floor
        self.head = nn.Linear(in_features, 2 * dim)
        self.register_buffer("prior_a", torch.full((dim,), float(prior_concentration1)), persistent=False)
        self.register_buffer("prior_b", torch.full((dim,), float(prior_concentration0)), persistent=False)

    def posterior(self, features: Tensor) -> Independent:
        a, b = (F.softplus(raw) + self.floor for raw in self.head(features).chunk(2, dim=-1))
        return Independent(OpenIntervalBeta(a, b, validate_args=False), 1)

    def prior(self) -> Independent:
        return Independent(OpenIntervalBeta(self.prior_a, self.prior_b, validate_args=False), 1)
