"""The power spherical distribution on the unit sphere S^(m-1) in R^m (De Cao & Aziz 2020): a von Mises-Fisher
alternative whose sample needs no rejection and whose normalizer needs no Bessel function.

With ``alpha = (m - 1)/2 + kappa`` and ``beta = (m - 1)/2``:

    q(z) = (1 + mu^T z)^kappa / C_m(kappa),   log C_m(kappa) = (alpha + beta) log 2 + beta log pi
                                                              + log Gamma(alpha) - log Gamma(alpha + beta)
    the cosine t = mu^T z:  (1 + t) / 2 ~ Beta(alpha, beta)
    E[z] = (alpha - beta) / (alpha + beta) mu = kappa / (kappa + m - 1) mu
    H(q) = log C_m(kappa) - kappa (log 2 + psi(alpha) - psi(alpha + beta))
    KL(q || U(S^(m-1))) = log |S^(m-1)| - H(q)

A draw is ``z = H (t e_1 + sqrt(1 - t^2) (0, u))``, ``u`` uniform on S^(m-2) and ``H`` the Householder reflection
to ``mu`` (``sphere.householder_to``); ``sqrt(1 - t^2) = 2 sqrt(b (1 - b))`` for the Beta draw ``b``. It is
differentiable in ``mu`` through ``H`` and in ``kappa`` through torch's Beta ``rsample``, which differentiates
its draw by the implicit rule. Computed in float64 and returned in the parameters' dtype.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor
from torch.distributions import Beta, Distribution, constraints, register_kl

from vae_zoo.latents.sphere import HypersphericalUniform, householder_to, log_sphere_area, unit_sphere


class PowerSpherical(Distribution):
    """``PowerSpherical(loc, concentration)`` on the unit sphere in R^m: ``loc`` ``(..., m)`` of length 1,
    ``concentration`` ``(...)`` (>= 0; 0 is the uniform distribution); batch shape ``loc.shape[:-1]``, event
    ``(m,)`` (see the module's formulas)."""

    arg_constraints: ClassVar[dict] = {
        "loc": constraints.real_vector,
        "concentration": constraints.nonnegative,
    }
    support = unit_sphere
    has_rsample = True
    #: the sample is differentiated by the implicit rule (torch's Beta ``rsample``; ``vae_zoo.capabilities``)
    implicit_rsample = True

    def __init__(self, loc: Tensor, concentration: Tensor, validate_args=None) -> None:
        self.loc, self.concentration = loc, concentration
        super().__init__(loc.shape[:-1], loc.shape[-1:], validate_args=validate_args)

    @property
    def m(self) -> int:
        return self.loc.shape[-1]

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

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        shape = self._extended_shape(sample_shape)
        alpha, beta = self._alpha_beta()
        alpha = alpha.double().expand(shape[:-1])
        b = Beta(alpha, torch.full_like(alpha, beta), validate_args=False).rsample().unsqueeze(-1)
        u = torch.randn(*shape[:-1], self.m - 1, dtype=torch.float64, device=self.loc.device)
        u = u / u.norm(dim=-1, keepdim=True)
        sine = 2 * torch.sqrt(
            (b * (1 - b)).clamp_min(torch.finfo(torch.float64).tiny)
        )  # 0 where b rounds to 1
        around_e1 = torch.cat([2 * b - 1, sine * u], dim=-1)
        z = householder_to(self.loc.double().expand(shape), around_e1)
        return z.to(self.loc.dtype)

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)


@register_kl(PowerSpherical, HypersphericalUniform)
def kl_power_spherical_uniform(q: PowerSpherical, p: HypersphericalUniform) -> Tensor:
    """``KL(PowerSpherical(mu, kappa) || U(S^(m-1))) = log |S^(m-1)| - H(q)``."""
    return log_sphere_area(q.m) - q.entropy()
