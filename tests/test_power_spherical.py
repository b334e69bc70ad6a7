"""The power spherical distribution (De Cao & Aziz 2020): its density against the Beta law of the cosine in
scipy, its entropy against quadrature and its sampler's cosines against scipy's Beta CDF (the directions around
the mean and the gradients' means, with the von Mises-Fisher's, in ``test_hyperspherical.py``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.stats
import torch
import torch.nn.functional as F

from vae_zoo.latents.power_spherical_distribution import PowerSpherical, kl_power_spherical_uniform
from vae_zoo.latents.sphere import HypersphericalUniform, log_sphere_area

F64 = torch.float64
DIMS = (2, 3, 5, 10, 40)
KAPPAS = (0.1, 1.0, 10.0, 100.0, 1000.0)


def unit(m: int, seed: int = 0) -> torch.Tensor:
    return F.normalize(torch.randn(m, dtype=F64, generator=torch.Generator().manual_seed(seed)), dim=0)


def cosine_law(m: int, kappa: float):
    """``(1 + t) / 2 ~ Beta((m - 1)/2 + kappa, (m - 1)/2)`` for the cosine ``t = mu^T z``."""
    return scipy.stats.beta((m - 1) / 2 + kappa, (m - 1) / 2)


@pytest.mark.parametrize("m", DIMS)
@pytest.mark.parametrize("kappa", (0.0, *KAPPAS))
def test_the_density_is_the_cosines_beta_law_spread_over_the_sphere(m, kappa):
    """On the sphere ``dz = |S^(m-2)| (1 - t^2)^((m-3)/2) dt``, so ``log q(z) + log |S^(m-2)| +
    (m-3)/2 log(1 - t^2)`` is the cosine's log-density, ``log Beta.pdf((1 + t)/2) - log 2``; at kappa = 0,
    the uniform density ``1 / |S^(m-1)|``."""
    mu = unit(m, seed=m)
    q = PowerSpherical(mu, torch.tensor(kappa, dtype=F64))
    t = torch.linspace(-0.999, 0.999, 41, dtype=F64)
    side = F.normalize(unit(m, seed=m + 1) - (unit(m, seed=m + 1) @ mu) * mu, dim=0)
    z = t.unsqueeze(-1) * mu + torch.sqrt(1 - t.square()).unsqueeze(-1) * side
    ours = q.log_prob(z) + log_sphere_area(m - 1) + (m - 3) / 2 * torch.log1p(-t.square())
    theirs = cosine_law(m, kappa).logpdf((1 + t.numpy()) / 2) - math.log(2)
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-10, atol=1e-9)
    if kappa == 0.0:
        torch.testing.assert_close(q.log_prob(z), torch.full((41,), -log_sphere_area(m), dtype=F64))


@pytest.mark.parametrize("m", DIMS)
@pytest.mark.parametrize("kappa", KAPPAS)
def test_entropy_and_kl_match_quadrature_over_the_cosine(m, kappa):
    """``H = -E[log q(z)] = -int f(t) log q(t) dt`` over the cosine's law by scipy's quadrature, with
    ``log q(t) = kappa log(1 + t) + log q(t = 0)`` (the normalizer from a point at right angles to ``mu``,
    which the density test checks), and ``KL(q || U) = log |S^(m-1)| - H``, 0 at kappa = 0 and growing with
    kappa."""
    law, mu = cosine_law(m, kappa), unit(m)
    q = PowerSpherical(mu, torch.tensor(kappa, dtype=F64))
    log_q_at_right_angles = q.log_prob(
        F.normalize(unit(m, seed=1) - (unit(m, seed=1) @ mu) * mu, dim=0)
    ).item()
    expected, _ = scipy.integrate.quad(
        lambda b: -law.pdf(b) * (kappa * math.log(2 * b) + log_q_at_right_angles),
        0,
        1,
        points=[law.mean()],
        limit=200,
    )
    np.testing.assert_allclose(q.entropy().item(), expected, rtol=1e-8, atol=1e-8)
    kl = kl_power_spherical_uniform(q, HypersphericalUniform(torch.zeros(m, dtype=F64)))
    np.testing.assert_allclose(kl.item(), log_sphere_area(m) - expected, rtol=1e-8, atol=1e-8)
    kappas = torch.tensor([0.0, 1e-3, 1.0, 1e2], dtype=F64)
    kls = kl_power_spherical_uniform(
        PowerSpherical(unit(m).expand(4, m), kappas), HypersphericalUniform(torch.zeros(m, dtype=F64))
    )
    assert abs(kls[0].item()) < 1e-12 and torch.all(kls.diff() > 0)


@pytest.mark.parametrize("m", DIMS)
@pytest.mark.parametrize("kappa", KAPPAS)
def test_the_cosines_follow_their_beta_law(m, kappa):
    """20,000 draws: the cosines against scipy's Beta CDF (Kolmogorov-Smirnov at a fixed seed), their mean
    against ``kappa / (kappa + m - 1)``, which is the distribution's ``mean`` along ``mu``."""
    torch.manual_seed(0)
    mu = unit(m, seed=m)
    q = PowerSpherical(mu, torch.tensor(kappa, dtype=F64))
    z = q.sample((20_000,))
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(20_000, dtype=F64), rtol=0, atol=1e-12)
    t = z @ mu
    assert scipy.stats.kstest((1 + t.numpy()) / 2, cosine_law(m, kappa).cdf).pvalue > 1e-3
    assert abs(t.mean() - kappa / (kappa + m - 1)) < 4 * t.std() / math.sqrt(len(t))
    torch.testing.assert_close(q.mean, kappa / (kappa + m - 1) * mu)


def test_float32_parameters_give_float32_values_computed_in_float64():
    """A kappa of 1e4 in float32: the entropy's log-gamma and digamma terms of ~1e5 cancel to ~10 nats, done in
    float64, so the float32 result is the float64 one rounded."""
    mu, kappa = unit(5).float(), torch.tensor(1e4)
    q32, q64 = PowerSpherical(mu, kappa), PowerSpherical(mu.double(), kappa.double())
    assert q32.entropy().dtype == torch.float32 and q32.rsample().dtype == torch.float32
    torch.testing.assert_close(q32.entropy(), q64.entropy().float())
    z = q64.sample((3,))
    torch.testing.assert_close(q32.log_prob(z.float()), q64.log_prob(z).float(), rtol=1e-5, atol=1e-3)
