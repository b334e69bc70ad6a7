"""The von Mises-Fisher distribution on the unit sphere S^(m-1) in R^m, with an implicitly reparameterized sample,
and the uniform distribution on that sphere (Davidson et al. 2018's hyperspherical latents).

With ``v = m/2 - 1`` and ``A(kappa) = I_(v+1)(kappa) / I_v(kappa)`` (``bessel.py``, with their derivatives):

    q(z) = C_m(kappa) exp(kappa mu^T z),   log C_m(kappa) = v log kappa - (v+1) log(2 pi) - log I_v(kappa)
    E[z] = A(kappa) mu
    KL(q || U(S^(m-1))) = kappa A(kappa) + log C_m(kappa) + log |S^(m-1)|,   |S^(m-1)| = 2 pi^(m/2) / Gamma(m/2)

A draw is ``z = H (w e_1 + sqrt(1 - w^2) (0, u))``: ``u`` uniform on S^(m-2), ``w = mu^T z`` drawn from its
marginal ``f(w) ∝ exp(kappa w) (1 - w^2)^a``, ``a = (m-3)/2``, by Wood's (1994) rejection sampler, and ``H`` the
Householder reflection that takes ``e_1`` (or ``-e_1``, whichever is farther from ``mu``) to ``mu``. The
sample is differentiable in ``mu`` through ``H`` and in ``kappa`` through ``w`` by the implicit rule
``dw/dkappa = -(dF/dkappa)(w) / f(w)`` (Figurnov et al. 2018), which since ``df/dkappa = (t - A) f`` is

    dw/dkappa = int_w^1 (t - A(kappa)) exp(kappa (t - w)) ((1 - t^2) / (1 - w^2))^a dt,

free of the normalizing constant, and computed by Gauss-Jacobi quadrature with the weight ``(1 - s)^a`` in
``t = w + (1 - w) s`` (exact for m = 3, where ``w`` has the explicit inverse CDF the tests compare with).
Everything is computed in float64 and returned in the parameters' dtype.
"""

from __future__ import annotations

import functools
import math
from typing import ClassVar

import scipy.special
import torch
from torch import Tensor
from torch.distributions import constraints, register_kl

from vae_zoo.latents.bessel import bessel_terms
from vae_zoo.latents.sphere import HypersphericalUniform, RotationallySymmetric, log_sphere_area

QUADRATURE_NODES = 64


@functools.cache
def _jacobi_rule(a: float, device: torch.device) -> tuple[Tensor, Tensor]:
    """Nodes ``s`` in [0, 1] and weights for ``int_0^1 g(s) (1 - s)^a ds`` (float64, made once per device)."""
    x, weights = scipy.special.roots_jacobi(QUADRATURE_NODES, a, 0.0)
    return tuple(
        torch.as_tensor(v, dtype=torch.float64, device=device) for v in ((x + 1) / 2, weights / 2 ** (a + 1))
    )


def cosine_sensitivity(w: Tensor, kappa: Tensor, m: int) -> Tensor:
    """``dw/dkappa`` at the draws ``w`` (float64), the quadrature of the module's formula."""
    a = (m - 3) / 2
    nodes, weights = _jacobi_rule(a, w.device)
    mean_cosine = bessel_terms(m / 2 - 1, kappa)[1].unsqueeze(-1)
    w_, kappa_ = w.unsqueeze(-1), kappa.unsqueeze(-1)
    t = w_ + (1 - w_) * nodes
    integrand = (t - mean_cosine) * torch.exp(kappa_ * (1 - w_) * nodes) * ((1 + t) / (1 + w_)) ** a
    return (1 - w) * (integrand * weights).sum(-1)


def wood_cosines(kappa: Tensor, m: int) -> Tensor:
    """Draws of ``w = mu^T z`` for each ``kappa`` (float64), by Wood's rejection sampler: with
    ``b = (m-1) / (2 kappa + sqrt(4 kappa^2 + (m-1)^2))``, ``x0 = (1-b)/(1+b)``, ``c = kappa x0 + (m-1) log(1-x0^2)``,
    propose ``w = (1 - (1+b) e) / (1 - (1-b) e)``, ``e ~ Beta((m-1)/2, (m-1)/2)``, and accept if
    ``kappa w + (m-1) log(1 - x0 w) - c >= log U``, ``U ~ U(0, 1)``."""
    b = (m - 1) / (2 * kappa + torch.sqrt(4 * kappa.square() + (m - 1) ** 2))
    x0 = (1 - b) / (1 + b)
    c = kappa * x0 + (m - 1) * torch.log1p(-x0.square())
    proposal = torch.distributions.Beta(
        torch.full_like(kappa, (m - 1) / 2), torch.full_like(kappa, (m - 1) / 2), validate_args=False
    )
    w = torch.zeros_like(kappa)
    pending = torch.ones_like(kappa, dtype=torch.bool)
    while pending.any():
        e = proposal.sample()
        proposed = (1 - (1 + b) * e) / (1 - (1 - b) * e)
        accept = kappa * proposed + (m - 1) * torch.log1p(-x0 * proposed) - c >= torch.log(
            torch.rand_like(kappa)
        )
        w = torch.where(pending & accept, proposed, w)
        pending = pending & ~accept
    return w


class _ImplicitCosine(torch.autograd.Function):
    """``w`` drawn without gradient; its gradient goes to ``kappa`` times ``dw/dkappa``."""

    @staticmethod
    def forward(ctx, kappa: Tensor, m: int) -> Tensor:
        w = wood_cosines(kappa, m)
        ctx.save_for_backward(w, kappa)
        ctx.m = m
        return w

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        w, kappa = ctx.saved_tensors
        return grad * cosine_sensitivity(w, kappa, ctx.m), None


def normalizer_and_mean_cosine(m: int, kappa: Tensor) -> tuple[Tensor, Tensor]:
    """``log C_m(kappa) = v log kappa - (v+1) log(2 pi) - log I_v(kappa)``, ``v = m/2 - 1``, and ``A(kappa)``."""
    v = m / 2 - 1
    log_i, mean_cosine = bessel_terms(v, kappa)
    return v * torch.log(kappa) - (v + 1) * math.log(2 * math.pi) - log_i, mean_cosine


def log_normalizer(m: int, kappa: Tensor) -> Tensor:
    """``log C_m(kappa)``, the log-density's constant on the sphere in R^m: ``log q(z) = log C_m(kappa) + kappa
    mu^T z``."""
    return normalizer_and_mean_cosine(m, kappa)[0]


class VonMisesFisher(RotationallySymmetric):
    """``vMF(loc, concentration)`` on the unit sphere in R^m: ``loc`` ``(..., m)`` of length 1, ``concentration``
    ``(...)``; batch shape ``loc.shape[:-1]``, event ``(m,)`` (see the module's formulas)."""

    arg_constraints: ClassVar[dict] = {"loc": constraints.real_vector, "concentration": constraints.positive}

    @property
    def mean(self) -> Tensor:
        return normalizer_and_mean_cosine(self.m, self.concentration)[1].unsqueeze(-1) * self.loc

    def log_prob(self, value: Tensor) -> Tensor:
        return log_normalizer(self.m, self.concentration) + self.concentration * (self.loc * value).sum(-1)

    def entropy(self) -> Tensor:
        log_c, mean_cosine = normalizer_and_mean_cosine(self.m, self.concentration)
        return -log_c - self.concentration * mean_cosine

    def cosines(self, shape: torch.Size) -> tuple[Tensor, Tensor]:
        """Wood's draws of ``w``, differentiated by the implicit rule (``_ImplicitCosine``)."""
        w = _ImplicitCosine.apply(self.concentration.double().expand(shape), self.m).unsqueeze(-1)
        return w, torch.sqrt((1 - w.square()).clamp_min(0))


@register_kl(VonMisesFisher, HypersphericalUniform)
def kl_von_mises_fisher_uniform(q: VonMisesFisher, p: HypersphericalUniform) -> Tensor:
    """``KL(vMF(mu, kappa) || U(S^(m-1))) = kappa A(kappa) + log C_m(kappa) + log |S^(m-1)|``; its derivative in
    kappa is ``kappa A'(kappa)``."""
    return -q.entropy() + log_sphere_area(q.m)
