"""The von Mises-Fisher latent (Davidson et al. 2018): Bessel functions and the density against scipy, Wood's
sampler's frequencies, the implicit gradient of the cosine against the explicit inverse CDF (m = 3), the KL
against scipy's entropy (the directions around the mean and the gradients' means, with the power spherical's,
in ``test_hyperspherical.py``)."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch
import torch.nn.functional as F

from vae_zoo.latents.bessel import bessel_terms
from vae_zoo.latents.sphere import HypersphericalUniform, log_sphere_area
from vae_zoo.latents.von_mises_fisher_distribution import (
    VonMisesFisher,
    cosine_sensitivity,
    kl_von_mises_fisher_uniform,
    wood_cosines,
)

F64 = torch.float64
ORDERS = (0.0, 0.5, 1.0, 1.5, 4.0, 19.0, 49.0)
ARGUMENTS = np.logspace(-3, 5, 200)


def unit(m: int, seed: int = 0) -> torch.Tensor:
    return F.normalize(torch.randn(m, dtype=F64, generator=torch.Generator().manual_seed(seed)), dim=0)


def mean_cosine(order: float, x: torch.Tensor) -> torch.Tensor:
    """``A_order(x) = I_(order+1)(x) / I_order(x)``."""
    return bessel_terms(order, x)[1]


@pytest.mark.parametrize("order", ORDERS)
def test_log_bessel_i_and_the_ratio_match_scipy_from_1e_minus_3_to_1e5(order):
    x = torch.tensor(ARGUMENTS, dtype=F64, requires_grad=True)
    log_i, ratio = bessel_terms(order, x)
    (derivative,) = torch.autograd.grad(log_i.sum(), x)
    reference = np.log(scipy.special.ive(order, ARGUMENTS)) + ARGUMENTS
    their_ratio = scipy.special.ive(order + 1, ARGUMENTS) / scipy.special.ive(order, ARGUMENTS)
    np.testing.assert_allclose(log_i.detach().numpy(), reference, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ratio.detach().numpy(), their_ratio, rtol=1e-9)
    np.testing.assert_allclose(derivative.numpy(), their_ratio + order / ARGUMENTS, rtol=1e-9)


@pytest.mark.parametrize("order", ORDERS)
def test_the_ratios_derivative_matches_mpmaths_numerical_derivative(order):
    """``A'`` from its closed form in float64 against mpmath's derivative of ``I_(v+1) / I_v`` at 40 digits,
    from x = 1e-3 to 1e4: relative 1e-6, or absolute 1e-11 where ``A' ~ (2v+1) / (2 x^2)`` is smaller (the closed
    form subtracts terms ~1, and A carries the float64 rounding of log I_v ~ x, about x 1e-16)."""
    mpmath.mp.dps = 40
    points = np.logspace(-3, 4, 15)
    x = torch.tensor(points, dtype=F64, requires_grad=True)
    (derivative,) = torch.autograd.grad(mean_cosine(order, x).sum(), x)
    exact = [
        float(mpmath.diff(lambda t: mpmath.besseli(order + 1, t) / mpmath.besseli(order, t), mpmath.mpf(p)))
        for p in points
    ]
    np.testing.assert_allclose(derivative.numpy(), exact, rtol=1e-6, atol=1e-11)


def test_a_negative_order_is_refused():
    with pytest.raises(ValueError, match="order of I_v must be >= 0"):
        bessel_terms(-1, torch.ones(1))


@pytest.mark.parametrize("m", [2, 3, 5, 10, 40])
@pytest.mark.parametrize("kappa", [0.1, 1.0, 10.0, 100.0, 1000.0])
def test_log_prob_entropy_and_kl_match_scipy(m, kappa):
    mu = unit(m)
    q = VonMisesFisher(mu, torch.tensor(kappa, dtype=F64))
    reference = scipy.stats.vonmises_fisher(mu.numpy(), kappa)
    z = torch.tensor(reference.rvs(50, random_state=0))
    np.testing.assert_allclose(q.log_prob(z).numpy(), reference.logpdf(z.numpy()), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(q.entropy().item(), reference.entropy(), rtol=1e-8, atol=1e-8)
    kl = kl_von_mises_fisher_uniform(q, HypersphericalUniform(torch.zeros(m, dtype=F64)))
    np.testing.assert_allclose(kl.item(), log_sphere_area(m) - reference.entropy(), rtol=1e-8, atol=1e-8)


def test_the_kl_vanishes_as_kappa_goes_to_zero_and_its_derivative_is_kappa_times_that_of_the_mean():
    """``d KL / d kappa = kappa A'(kappa)``, ``A' = 1 - A^2 - (m - 1) A / kappa``, evaluated by mpmath at 40 digits."""
    mpmath.mp.dps = 40
    kappas = [1e-6, 0.3, 3.0, 30.0, 300.0, 3000.0]
    for m in (2, 3, 10, 40):
        kappa = torch.tensor(kappas, dtype=F64, requires_grad=True)
        q = VonMisesFisher(unit(m).expand(6, m), kappa)
        kl = kl_von_mises_fisher_uniform(q, HypersphericalUniform(torch.zeros(m, dtype=F64)))
        (derivative,) = torch.autograd.grad(kl.sum(), kappa)
        expected = []
        for k in map(mpmath.mpf, kappas):
            a = mpmath.besseli(m / 2, k) / mpmath.besseli(m / 2 - 1, k)
            expected.append(float(k * (1 - a**2 - (m - 1) * a / k)))
        # at kappa = 1e-6 the derivative (~1e-8) is a difference of terms ~ v / kappa: compared from 0.3 up, to
        # the float64 rounding of log I_v (~ kappa 1e-16) amplified by kappa
        np.testing.assert_allclose(derivative[1:].numpy(), expected[1:], rtol=1e-8, atol=1e-8)
        assert abs(kl[0].item()) < 1e-9 and torch.all(kl[1:] > 0)


@pytest.mark.parametrize("m", [2, 3, 5, 10, 40])
@pytest.mark.parametrize("kappa", [0.1, 1.0, 10.0, 1000.0])
def test_wood_cosines_follow_the_marginal(m, kappa):
    """20,000 draws: the cosine ``w = mu^T z`` against scipy's own sampler (two-sample Kolmogorov-Smirnov at a
    fixed seed), its mean against ``A(kappa)``."""
    torch.manual_seed(0)
    mu = unit(m, seed=m)
    z = VonMisesFisher(mu, torch.tensor(kappa, dtype=F64)).sample((20_000,))
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(20_000, dtype=F64), rtol=0, atol=1e-12)
    w = z @ mu
    theirs = scipy.stats.vonmises_fisher(mu.numpy(), kappa).rvs(20_000, random_state=1) @ mu.numpy()
    assert scipy.stats.ks_2samp(w.numpy(), theirs).pvalue > 1e-3
    a = mean_cosine(m / 2 - 1, torch.tensor(kappa, dtype=F64))
    assert abs(w.mean() - a) < 4 * w.std() / math.sqrt(len(w))


@pytest.mark.parametrize("kappa", [0.01, 0.5, 3.0, 50.0, 1000.0, 10000.0])
def test_on_the_2_sphere_the_implicit_gradient_equals_the_explicit_inverse_cdf(kappa):
    """For m = 3 the cosine has the inverse CDF ``w = 1 + log(u + (1 - u) e^(-2 kappa)) / kappa``; at each draw's
    own ``u`` its derivative in kappa is what the implicit rule's quadrature gives."""
    torch.manual_seed(0)
    k = torch.full((2000,), kappa, dtype=F64)
    w = wood_cosines(k, 3)
    u = ((torch.exp(k * (w - 1)) - torch.exp(-2 * k)) / -torch.expm1(-2 * k)).detach()
    k.requires_grad_()
    explicit = 1 + torch.log(u + (1 - u) * torch.exp(-2 * k)) / k
    (derivative,) = torch.autograd.grad(explicit.sum(), k)
    torch.testing.assert_close(explicit.detach(), w, rtol=0, atol=1e-12)
    torch.testing.assert_close(cosine_sensitivity(w, k.detach(), 3), derivative, rtol=1e-5, atol=0)
