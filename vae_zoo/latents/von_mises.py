"""von Mises latents on the circle, for implicit reparameterization (Figurnov, Mohamed & Mnih 2018)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Independent, Uniform, VonMises, register_kl

from vae_zoo.errors import ConfigError
from vae_zoo.latents.family import LatentFamily
from vae_zoo.latents.von_mises_cdf import DifferentiableCDFVonMises

ASYMPTOTIC_ABOVE = 50.0


class CircularUniform(Uniform):
    """``U(-pi, pi)`` per coordinate (built with those bounds): the von Mises family's prior, the uniform
    distribution on the circle, which the KL registry knows by its class."""


@register_kl(VonMises, CircularUniform)
def kl_von_mises_circular_uniform(q: VonMises, p: CircularUniform) -> Tensor:
    """``KL(vM(mu, kappa) || U(-pi, pi)) = kappa A(kappa) - log I0(kappa)`` per coordinate, ``A = I1 / I0``, as
    ``kappa (i1e / i0e - 1) - log i0e`` (exponentially scaled Bessel functions); above kappa = 50,
    ``kappa (A - 1)`` from its asymptotic series ``-1/2 - 1/(8k) - 1/(8k^2) - 25/(128k^3) - 13/(32k^4)`` (next term
    < 1e-7), as the difference of the two ratios cancels in float32. torch registers no von Mises KL."""
    kappa = q.concentration
    i0e = torch.special.i0e(kappa)
    r = 1 / kappa.clamp_min(ASYMPTOTIC_ABOVE)
    asymptotic = -0.5 - r * (1 / 8 + r * (1 / 8 + r * (25 / 128 + r * 13 / 32)))
    direct = kappa * (torch.special.i1e(kappa) / i0e - 1)
    return torch.where(kappa > ASYMPTOTIC_ABOVE, asymptotic, direct) - i0e.log()


class VonMisesLatent(LatentFamily):
    """``q(z|x) = prod_d vM(z_d; mu_d(x), kappa_d(x))`` with ``kappa = softplus(.) + floor``;
    ``p(z) = U(-pi, pi)^D``. The decoder reads each angle as ``(cos z, sin z)``.

    torch's ``VonMises`` has no ``rsample``: the implicit estimator differentiates the sample through
    the CDF (``von_mises_cdf.py``). Closed-form KL per coordinate (``kl_von_mises_circular_uniform``):
    ``kappa A(kappa) - log I0(kappa)``, finite for kappa up to 1e4 and beyond.
    """

    circular = True

    def __init__(self, in_features: int, dim: int = 10, floor: float = 1e-3) -> None:
        super().__init__(in_features)
        if dim < 1:
            raise ConfigError(f"model.latent.dim={dim} must be >= 1")
        if floor <= 0:
            raise ConfigError(f"model.latent.floor={floor} must be > 0")
        self.sample_features = 2 * dim
        self.floor = floor
        self.head = nn.Linear(in_features, 2 * dim)
        self.register_buffer("prior_low", torch.full((dim,), -math.pi), persistent=False)
        self.register_buffer("prior_high", torch.full((dim,), math.pi), persistent=False)

    def posterior(self, features: Tensor) -> Independent:
        loc, raw_concentration = self.head(features).chunk(2, dim=-1)
        concentration = F.softplus(raw_concentration) + self.floor
        return Independent(DifferentiableCDFVonMises(loc, concentration, validate_args=False), 1)

    def prior(self) -> Independent:
        return Independent(CircularUniform(self.prior_low, self.prior_high, validate_args=False), 1)

    def decoder_input(self, z: Tensor) -> Tensor:
        return torch.cat([torch.cos(z), torch.sin(z)], dim=-1)

    def location(self, q: Independent) -> Tensor:
        return torch.remainder(q.base_dist.loc + math.pi, 2 * math.pi) - math.pi

    def unit_locations(self, q: Independent) -> Tensor:
        """Each angle's mean direction as ``(cos, sin)``: its spread across images is ``1 - R^2`` (``R`` the
        length of the directions' mean), which does not depend on where the circle is cut."""
        angle = self.location(q)
        return torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)
