"""Beta, Dirichlet, von Mises and truncated Normal latents: implicit gradients against closed forms, the von Mises CDF against
numerical integration, each sampler against its CDF, closed-form KLs, and finiteness at extreme parameters."""

from __future__ import annotations

import math

import mpmath
import pytest
import torch
from torch.distributions import Dirichlet, Independent, VonMises

from tests.conftest import build_model
from vae_zoo.estimators import ImplicitEstimator
from vae_zoo.latents.beta import BetaLatent, OpenIntervalBeta
from vae_zoo.latents.dirichlet import DirichletLatent
from vae_zoo.latents.truncated_normal import TruncatedNormal, TruncatedNormalLatent
from vae_zoo.latents.von_mises import VonMisesLatent
from vae_zoo.latents.von_mises_cdf import DifferentiableCDFVonMises, von_mises_cdf

DRAWS = 100_000
F64 = torch.float64


def bessel_ratio(kappa: torch.Tensor) -> torch.Tensor:
    """``A(kappa) = I1(kappa) / I0(kappa)``, differentiable."""
    return torch.special.i1e(kappa) / torch.special.i0e(kappa)


def truncated_normal_moments(mu: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """E[z] and E[z^2] of N(mu, sigma^2) truncated to [-2, 2] (Johnson, Kotz & Balakrishnan)."""
    a, b = (-2 - mu) / sigma, (2 - mu) / sigma
    pdf = lambda t: torch.exp(-t * t / 2) / math.sqrt(2 * math.pi)
    mass = torch.special.ndtr(b) - torch.special.ndtr(a)
    mean = mu + sigma * (pdf(a) - pdf(b)) / mass
    variance = sigma**2 * (1 + (a * pdf(a) - b * pdf(b)) / mass - ((pdf(a) - pdf(b)) / mass) ** 2)
    return mean, variance + mean**2


# family: (distribution from leaf parameters, {name: (f(z), E[f(z)] in closed form of the parameters)})
FAMILIES = {
    "beta": (
        lambda a, b: OpenIntervalBeta(a, b),
        {
            "z": (lambda z: z, lambda a, b: a / (a + b)),
            "z^2": (lambda z: z**2, lambda a, b: a * (a + 1) / ((a + b) * (a + b + 1))),
        },
    ),
    "dirichlet": (
        lambda a, b: Dirichlet(torch.stack([a, b, b], -1)),  # b in two slots: d/db sums both
        {
            "z_0": (lambda z: z[..., 0], lambda a, b: a / (a + 2 * b)),
            "z_0^2": (lambda z: z[..., 0] ** 2, lambda a, b: a * (a + 1) / ((a + 2 * b) * (a + 2 * b + 1))),
        },
    ),
    "von_mises": (
        lambda mu, kappa: DifferentiableCDFVonMises(mu, kappa),
        {
            "cos z": (torch.cos, lambda mu, kappa: bessel_ratio(kappa) * torch.cos(mu)),
            "sin z": (torch.sin, lambda mu, kappa: bessel_ratio(kappa) * torch.sin(mu)),
        },
    ),
    "truncated_normal": (
        lambda mu, sigma: TruncatedNormal(mu, sigma, -2.0, 2.0),
        {
            "z": (lambda z: z, lambda mu, sigma: truncated_normal_moments(mu, sigma)[0]),
            "z^2": (lambda z: z**2, lambda mu, sigma: truncated_normal_moments(mu, sigma)[1]),
        },
    ),
}
# (first, second) parameters: Beta (a, b) and Dirichlet (a, b) with concentrations 0.1, 1, 10 in each
# slot; von Mises (mu, kappa) with kappa 0.1, 1, 10, 100
POINTS = {
    "beta": [(c, 1.5) for c in (0.1, 1.0, 10.0)] + [(1.5, c) for c in (0.1, 1.0, 10.0)],
    "dirichlet": [(c, 1.5) for c in (0.1, 1.0, 10.0)] + [(1.5, c) for c in (0.1, 1.0, 10.0)],
    "von_mises": [(0.7, kappa) for kappa in (0.1, 1.0, 10.0, 100.0)],
    "truncated_normal": [(0.5, sigma) for sigma in (0.1, 1.0, 10.0)] + [(-1.9, 0.5)],
}
CASES = [
    (family, moment, point)
    for family in FAMILIES
    for moment in FAMILIES[family][1]
    for point in POINTS[family]
]


@pytest.mark.parametrize(("family", "moment", "point"), CASES, ids=[f"{f}-{m}-{p}" for f, m, p in CASES])
def test_implicit_gradients_match_the_closed_form_moments_in_float64(family, moment, point):
    """Mean of per-draw implicit gradients of E[f(z)] w.r.t. each parameter == the autograd derivative of
    E[f(z)]'s closed form, within 4 standard errors."""
    torch.manual_seed(0)
    build, moments = FAMILIES[family]
    f, expectation = moments[moment]
    first = torch.full((DRAWS,), point[0], dtype=F64, requires_grad=True)
    second = torch.full((DRAWS,), point[1], dtype=F64, requires_grad=True)
    z = ImplicitEstimator().sample(build(first, second))
    f(z).sum().backward()
    exact_first, exact_second = (torch.tensor(value, dtype=F64, requires_grad=True) for value in point)
    exact = torch.autograd.grad(expectation(exact_first, exact_second), [exact_first, exact_second])
    for grad, reference in zip((first.grad, second.grad), exact):
        mean, stderr = grad.mean().item(), grad.std().item() / math.sqrt(DRAWS)
        assert abs(mean - reference.item()) < 4 * stderr + 1e-10, (mean, reference.item(), stderr)


def integrated_von_mises_cdf(x: float, kappa: float) -> float:
    """``F(x)`` on [-pi, pi) by adaptive quadrature of the density in 30-digit arithmetic."""
    mpmath.mp.dps = 30
    k = mpmath.mpf(kappa)
    norm = 2 * mpmath.pi * mpmath.besseli(0, k) * mpmath.exp(-k)
    breakpoints = [-mpmath.pi, 0, x] if x > 0 else [-mpmath.pi, x]
    return float(mpmath.quad(lambda t: mpmath.exp(k * (mpmath.cos(t) - 1)), breakpoints) / norm)


ANGLES = (-3.0, -1.0, -0.1, 0.02, 0.5, 2.5)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_von_mises_cdf_matches_numerical_integration_from_kappa_1e_minus_3_to_1e4(dtype):
    tolerance = {torch.float64: 1e-8, torch.float32: 1e-6}[dtype]  # measured: 3.8e-9 and 5.6e-8
    for kappa in (1e-3, 0.1, 1.0, 5.0, 10.4, 10.6, 30.0, 100.0, 1e3, 1e4):
        ours = von_mises_cdf(torch.tensor(ANGLES, dtype=dtype), torch.tensor(kappa, dtype=dtype))
        reference = torch.tensor([integrated_von_mises_cdf(x, kappa) for x in ANGLES], dtype=F64)
        assert (ours.double() - reference).abs().max() < tolerance, kappa


def test_von_mises_cdf_gradients_are_its_density_and_its_kappa_finite_difference():
    kappa = torch.logspace(-3, 4, 15, dtype=F64)[:, None].expand(-1, len(ANGLES)).clone().requires_grad_()
    x = torch.tensor(ANGLES, dtype=F64).expand(15, -1).clone().requires_grad_()
    d_x, d_kappa = torch.autograd.grad(von_mises_cdf(x, kappa).sum(), [x, kappa])
    density = VonMises(torch.zeros_like(x), kappa.detach()).log_prob(x.detach()).exp()
    # torch's log_prob takes log I0 from a polynomial fit good to ~1e-7; F's density uses i0e
    torch.testing.assert_close(d_x, density, rtol=1e-6, atol=1e-300)
    h = 1e-6 * kappa.detach()
    finite = (
        von_mises_cdf(x.detach(), kappa.detach() + h) - von_mises_cdf(x.detach(), kappa.detach() - h)
    ) / (2 * h)
    torch.testing.assert_close(d_kappa, finite, rtol=1e-5, atol=1e-12)
    # F(x + 2 pi m) = F(x) + m: the angle's turns count
    shifted = von_mises_cdf(x.detach() + 4 * math.pi, kappa.detach()) - von_mises_cdf(
        x.detach(), kappa.detach()
    )
    torch.testing.assert_close(shifted, torch.full_like(shifted, 2.0), rtol=0, atol=1e-12)


def chi_square_p_value(samples: torch.Tensor, edges: torch.Tensor, cdf_at_edges: torch.Tensor) -> float:
    """Pearson's chi-square test of samples against bin probabilities from a CDF (p-value)."""
    counts = torch.histogram(samples.double().clamp(edges[0], edges[-1]), edges).hist
    expected = torch.diff(cdf_at_edges) * len(samples)
    statistic = ((counts - expected) ** 2 / expected).sum()
    dof = len(counts) - 1
    return torch.special.gammaincc(torch.tensor(dof / 2, dtype=F64), statistic / 2).item()


def beta_cdf(a: float, b: float, edges: torch.Tensor) -> torch.Tensor:
    mpmath.mp.dps = 20
    return torch.tensor(
        [float(mpmath.betainc(a, b, 0, e, regularized=True)) for e in edges.tolist()], dtype=F64
    )


SAMPLERS = {  # name: (draw n samples given a scale of the true parameters, edges, CDF at the edges)
    "von_mises": (
        lambda n, s: VonMises(torch.tensor(0.3), torch.tensor(2.0 * s)).sample((n,)),
        torch.linspace(-math.pi, math.pi, 21, dtype=F64),
        lambda edges: (
            von_mises_cdf(edges - 0.3, torch.tensor(2.0, dtype=F64))
            - von_mises_cdf(torch.tensor(-math.pi - 0.3, dtype=F64), torch.tensor(2.0, dtype=F64))
        ),
    ),
    "beta": (
        lambda n, s: OpenIntervalBeta(torch.tensor(0.5 * s), torch.tensor(2.0)).sample((n,)),
        torch.linspace(0, 1, 21, dtype=F64),
        lambda edges: beta_cdf(0.5, 2.0, edges),
    ),
    "dirichlet (marginal)": (  # z_0 of Dir(0.5, 1, 1) is Beta(0.5, 2)
        lambda n, s: Dirichlet(torch.tensor([0.5 * s, 1.0, 1.0])).sample((n,))[:, 0],
        torch.linspace(0, 1, 21, dtype=F64),
        lambda edges: beta_cdf(0.5, 2.0, edges),
    ),
    "truncated_normal": (
        lambda n, s: TruncatedNormal(torch.tensor(0.5), torch.tensor(0.8 * s), -2.0, 2.0).sample((n,)),
        torch.linspace(-2, 2, 21, dtype=F64),
        lambda edges: (
            (
                torch.special.ndtr((edges - 0.5) / 0.8)
                - torch.special.ndtr(torch.tensor(-2.5 / 0.8, dtype=F64))
            )
            / (
                torch.special.ndtr(torch.tensor(1.5 / 0.8, dtype=F64))
                - torch.special.ndtr(torch.tensor(-2.5 / 0.8, dtype=F64))
            )
        ),
    ),
}


@pytest.mark.parametrize("name", SAMPLERS)
def test_each_sampler_fits_its_cdf_and_a_wrong_sampler_is_rejected(name):
    torch.manual_seed(1)
    draw, edges, cdf = SAMPLERS[name]
    cdf_at_edges = cdf(edges)
    assert chi_square_p_value(draw(50_000, 1.0), edges, cdf_at_edges) > 1e-3
    assert chi_square_p_value(draw(50_000, 1.1), edges, cdf_at_edges) < 1e-6  # 10% off in one parameter


def posterior_of(latent, *parameters: torch.Tensor):
    """A posterior of the family's own class with the given parameters (float64), wrapped as the family
    wraps it."""
    base = latent.posterior(torch.zeros(1, latent.in_features)).base_dist
    bounds = (base.low, base.high) if isinstance(base, TruncatedNormal) else ()
    return Independent(type(base)(*parameters, *bounds), 1)


def test_closed_form_kls_match_monte_carlo_in_float64():
    torch.manual_seed(2)
    cases = [
        (
            BetaLatent(4, dim=3, prior_concentration1=0.5, prior_concentration0=2.0),
            (torch.tensor([0.3, 1.0, 8.0], dtype=F64), torch.tensor([2.0, 0.7, 3.0], dtype=F64)),
        ),
        (
            DirichletLatent(4, n=2, k=3, prior_concentration=0.3),
            (torch.tensor([[0.5, 2.0, 1.0], [4.0, 0.2, 1.5]], dtype=F64),),
        ),
        (
            VonMisesLatent(4, dim=3),
            (torch.tensor([0.1, -2.0, 3.0], dtype=F64), torch.tensor([0.05, 1.0, 30.0], dtype=F64)),
        ),
        (
            TruncatedNormalLatent(4, dim=3),
            (torch.tensor([0.3, -1.5, 1.9], dtype=F64), torch.tensor([0.5, 2.0, 0.05], dtype=F64)),
        ),
    ]
    for latent, parameters in cases:
        q = posterior_of(latent, *parameters)
        prior = latent.prior()
        z = q.sample((200_000,))
        log_ratio = q.log_prob(z) - prior.log_prob(z).double()
        mean, stderr = log_ratio.mean().item(), log_ratio.std().item() / math.sqrt(len(z))
        assert abs(latent.kl(q).item() - mean) < 4 * stderr, (
            type(latent).__name__,
            latent.kl(q).item(),
            mean,
        )


def test_von_mises_kl_stays_finite_and_exact_up_to_kappa_1e4():
    latent = VonMisesLatent(4, dim=1)
    mpmath.mp.dps = 30
    for kappa in (1e-3, 1.0, 49.0, 51.0, 100.0, 1e4, 1e6):
        k = mpmath.mpf(kappa)
        exact = float(k * mpmath.besseli(1, k) / mpmath.besseli(0, k) - mpmath.log(mpmath.besseli(0, k)))
        for dtype, tolerance in ((torch.float64, 1e-9), (torch.float32, 1e-6)):
            q = posterior_of(latent, torch.zeros(1, dtype=dtype), torch.tensor([kappa], dtype=dtype))
            assert math.isclose(latent.kl(q).item(), exact, rel_tol=tolerance, abs_tol=1e-7), (kappa, dtype)


inverse_softplus = lambda y: y + torch.log(-torch.expm1(-y))
# family, settings, its head's bias for extreme parameters (25 values from the smallest to the largest)
EXTREMES = {
    "beta": (
        {"dim": 25, "floor": 1e-5},
        lambda v: torch.cat([inverse_softplus(v), inverse_softplus(v.flip(0))]),
    ),
    "dirichlet": ({"n": 5, "k": 5, "floor": 1e-5}, inverse_softplus),
    "von_mises": (
        {"dim": 25, "floor": 1e-5},
        lambda v: torch.cat([torch.linspace(-3, 3, 25), inverse_softplus(v)]),
    ),
    "truncated_normal": (
        {"dim": 25, "floor": 1e-5},
        lambda v: torch.cat([torch.linspace(-20, 20, 25), inverse_softplus(v)]),
    ),
}
RANGES = {"beta": (-3, 3), "dirichlet": (-3, 3), "von_mises": (-3, 4), "truncated_normal": (-3, 3)}


@pytest.mark.parametrize("autocast", [None, torch.bfloat16])
@pytest.mark.parametrize("objective", ["elbo", "iwae"])
@pytest.mark.parametrize("estimator", ["implicit", "score_function"])
@pytest.mark.parametrize("family", EXTREMES)
def test_finite_loss_and_gradients_for_extreme_parameters(family, estimator, objective, autocast):
    torch.manual_seed(3)
    settings, bias = EXTREMES[family]
    model = build_model(family, estimator, objective, latent_settings=settings)
    values = torch.logspace(*RANGES[family], 25)
    with torch.no_grad():  # the same extreme parameters whatever the input
        model.model.latent.head.weight.zero_()
        model.model.latent.head.bias.copy_(bias(values - 1e-5))
    x = torch.rand(8, 1, 28, 28).bernoulli()
    context = torch.autocast("cpu", dtype=autocast) if autocast else torch.autocast("cpu", enabled=False)
    with context:
        loss, terms = model.objective(model.model, x)
    assert torch.isfinite(loss) and all(torch.isfinite(value) for value in terms.values())
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    with context:
        assert torch.isfinite(model.model.importance_weighted_nll(x, 10)).all()
