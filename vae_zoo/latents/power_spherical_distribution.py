"""The power spherical distribution on the unit sphere S^(m-1) in R^m (De Cao & Aziz 2020): a von Mises-Fisher
alternative whose sample needs no rejection and whose normalizer needs no Bessel function.

With ``alpha = (m - 1)/2 + kappa`` and ``beta = (m - 1)/2``:

    q(z) = (1 + mu^T z)^kappa / C_m(kappa),   log C_m(kappa) = (alpha + beta) log 2 + beta log pi
                                                              + log Gamma(alpha) - log Gamma(alpha + beta)
    the cosine t = mu^T z:  (1 + t) / 2 ~ Beta(alpha, beta)
    E[z] = (alpha - beta) / (alpha + beta) mu = kappa / (kappa + m - 1) mu
    H(q) = log C_m(kappa) - kappa (log 2 + psi(alpha) - psi(alpha + beta))
    KL(q || U(S^(m-1))) = log |S^(m-1)| - H(q)

A draw is ``z = H (t e_1 + sqrt(1 - t^2) (0, u))`` (``sphere.RotationallySymmetric``) with ``t = 2b - 1`` for a
Beta draw ``b``: differentiable in ``mu`` through the reflection ``H`` and in ``kappa`` through torch's Beta
``rsample``, which differentiates its draw by the implicit rule. Computed in float64 and returned in the
parameters' dtype.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor
from torch.distributions import Beta, constraints, register_kl

from vae_zoo.latents.sphere import HypersphericalUniform, RotationallySymmetric, log_sphere_area


class PowerSpherical(RotationallySymmetric):
    """``PowerSpherical(loc, concentration)`` on the unit sphere in R^m: ``loc`` ``(..., m)`` of length 1,
    ``concentration`` ``(...)`` (>= 0; 0 is the uniform distribution); batch shape ``loc.shape[:-1]``, event
    ``(m,)`` (see the module's formulas)."""

    arg_constraints: ClassVar[dict] = {
        "loc": constraints.real_vector,
        "concentration": constraints.nonnegative,
    }

    def _alpha_beta(self) -> tuple[Tensor, float]:
        """``alpha = (m - 1)/2 + kappa`` (float64) and ``beta = (m - 1)/2``."""
        beta = (self.m - 1) / 2
        return self.concentration.double() + beta, beta

    def _log_normalizer(self) -> Tensor:
        """``log C_m(kappa)``, float64."""
        alpha, beta = self._alpha_beta()
        return (
            (alpha + beta) * math.log(2)
            + beta * math.log(math.pi)
            + torch.lgamma(alpha)
            - torch.lgamma(alpha + beta)
        )

    @property
    def mean(self) -> Tensor:
        return (self.concentration / (self.concentration + self.m - 1)).unsqueeze(-1) * self.loc

    def log_prob(self, value: Tensor) -> Tensor:
        cosine = (self.loc * value).sum(-1).double()
        log_density = self.concentration.double() * torch.log1p(cosine.clamp_min(-1)) - self._log_normalizer()
        return log_density.to(self.loc.dtype)

    def entropy(self) -> Tensor:
        alpha, beta = self._alpha_beta()
        mean_log = math.log(2) + torch.digamma(alpha) - torch.digamma(alpha + beta)  # E[log(1 + t)]
        return (self._log_normalizer() - self.concentration.double() * mean_log).to(self.loc.dtype)

    def cosines(self, shape: torch.Size) -> tuple[Tensor, Tensor]:
        """``t = 2b - 1`` and ``sqrt(1 - t^2) = 2 sqrt(b (1 - b))`` for a Beta draw ``b``, which torch's ``rsample``
        differentiates by the implicit rule (the sine 0 where ``b`` rounds to 1)."""
        alpha, beta = self._alpha_beta()
        alpha = alpha.expand(shape)
        b = Beta(alpha, torch.full_like(alpha, beta), validate_args=False).rsample().unsqueeze(-1)
        return 2 * b - 1, 2 * torch.sqrt((b * (1 - b)).clamp_min(torch.finfo(torch.float64).tiny))


@register_kl(PowerSpherical, HypersphericalUniform)
def kl_power_spherical_uniform(q: PowerSpherical, p: HypersphericalUniform) -> Tensor:
    """``KL(PowerSpherical(mu, kappa) || U(S^(m-1))) = log |S^(m-1)| - H(q)``."""
    return log_sphere_area(q.m) - q.entropy()
