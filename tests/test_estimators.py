"""Gradient estimators against analytic gradients: unbiasedness, implicit == pathwise, variance, range."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal

from tests.conftest import build_model
from vae_zoo.estimators import Cost, Draw, ImplicitEstimator, PathwiseEstimator, ScoreFunctionEstimator
from vae_zoo.estimators.implicit import sample_through_cdf
from vae_zoo.latents.gamma import GammaLatent
from vae_zoo.latents.gamma_cdf import DifferentiableCDFGamma, regularized_gamma_p

BETA = 2.0
# f(z), and d/dalpha, d/dbeta of E[f(z)] for z ~ Gamma(alpha, beta) (rate beta)
MOMENTS = {
    "z": (lambda z: z, lambda a, b: 1 / b, lambda a, b: -a / b**2),
    "z^2": (lambda z: z**2, lambda a, b: (2 * a + 1) / b**2, lambda a, b: -2 * a * (a + 1) / b**3),
    "log z": (torch.log, lambda a, b: torch.polygamma(1, torch.tensor(a)).item(), lambda a, b: -1 / b),
}


class ThroughCDF(ImplicitEstimator):
    """The implicit rule taken through the Gamma's differentiable CDF instead of torch's native kernel."""

    def sample(self, q, sample_shape=()):
        return sample_through_cdf(q, sample_shape)


def per_sample_gradients(estimator, alpha: float, f, draws: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One gradient estimate of d/d(alpha, beta) E[f(z)] per draw (each draw has its own parameter copy)."""
    a = torch.full((draws,), alpha, dtype=torch.float64, requires_grad=True)
    b = torch.full((draws,), BETA, dtype=torch.float64, requires_grad=True)
    q = DifferentiableCDFGamma(a, b)
    z = estimator.sample(q)
    objective = f(z)
    surrogate = estimator.surrogate(q, Draw(z), Cost(objective, f))
    (objective + (surrogate if surrogate is not None else 0)).sum().backward()
    return a.grad, b.grad


@pytest.mark.parametrize("alpha", [0.1, 1.0, 10.0])
@pytest.mark.parametrize("moment", MOMENTS)
@pytest.mark.parametrize("name", ["implicit", "implicit_through_cdf", "score_function"])
def test_gamma_gradients_are_unbiased(name, moment, alpha):
    torch.manual_seed(0)
    estimator = {
        "implicit": ImplicitEstimator(),
        "implicit_through_cdf": ThroughCDF(),
        "score_function": ScoreFunctionEstimator(baseline="none"),
    }[name]
    f, d_alpha, d_beta = MOMENTS[moment]
    draws = 200_000
    grads = per_sample_gradients(estimator, alpha, f, draws)
    for grad, exact in zip(grads, (d_alpha(alpha, BETA), d_beta(alpha, BETA))):
        mean, stderr = grad.mean().item(), grad.std().item() / math.sqrt(draws)
        assert abs(mean - exact) < 4 * stderr + 1e-9, (name, moment, alpha, mean, exact, stderr)


def test_score_function_variance_is_larger_than_implicit_on_the_same_problem():
    torch.manual_seed(1)
    implicit = per_sample_gradients(ImplicitEstimator(), 1.0, MOMENTS["z^2"][0], 50_000)
    score = per_sample_gradients(ScoreFunctionEstimator(baseline="none"), 1.0, MOMENTS["z^2"][0], 50_000)
    for implicit_grad, score_grad in zip(implicit, score):
        assert score_grad.var() > 2 * implicit_grad.var()  # measured: 4.3x (alpha) here


def test_implicit_equals_pathwise_on_the_normal():
    loc = torch.randn(1000, dtype=torch.float64, requires_grad=True)
    scale = torch.rand(1000, dtype=torch.float64).add(0.1).requires_grad_()
    results = []
    for estimator in (PathwiseEstimator(), ImplicitEstimator()):
        torch.manual_seed(2)
        z = estimator.sample(Normal(loc, scale))
        results.append((z.detach(), *torch.autograd.grad(z.sum(), [loc, scale])))
    (z_path, dloc_path, dscale_path), (z_impl, dloc_impl, dscale_impl) = results
    assert torch.equal(z_path, z_impl)
    torch.testing.assert_close(dloc_impl, dloc_path, rtol=0, atol=1e-6)
    torch.testing.assert_close(dscale_impl, dscale_path, rtol=0, atol=1e-6)
    torch.testing.assert_close(dloc_impl, torch.ones_like(loc), rtol=0, atol=1e-6)  # dz/dmu = 1
    torch.testing.assert_close(dscale_impl, (z_impl - loc.detach()) / scale.detach(), rtol=0, atol=1e-6)


def test_implicit_rule_through_the_gamma_cdf_matches_torchs_native_implicit_rsample():
    alpha = torch.logspace(-2, 2, 40).requires_grad_()
    beta = torch.full((40,), 1.5, requires_grad=True)
    torch.manual_seed(3)
    ours = sample_through_cdf(DifferentiableCDFGamma(alpha, beta))
    ours_grads = torch.autograd.grad(ours.sum(), [alpha, beta])
    torch.manual_seed(3)
    theirs = torch.distributions.Gamma(alpha, beta).rsample()
    theirs_grads = torch.autograd.grad(theirs.sum(), [alpha, beta])
    assert torch.equal(ours.detach(), theirs.detach())
    for mine, reference in zip(ours_grads, theirs_grads):
        torch.testing.assert_close(mine, reference, rtol=1e-4, atol=1e-30)


def test_gamma_cdf_shape_derivative_matches_float64_finite_differences():
    a = torch.logspace(-2, 3, 30, dtype=torch.float64)
    torch.manual_seed(4)  # five typical points x per shape a: samples of Gamma(a, 1)
    x = torch.distributions.Gamma(a[:, None].expand(-1, 5), torch.tensor(1.0, dtype=torch.float64)).sample()
    leaf = a[:, None].expand(-1, 5).clone().requires_grad_()
    (grad,) = torch.autograd.grad(regularized_gamma_p(leaf, x).sum(), leaf)
    h = 1e-6 * leaf.detach()
    reference = (
        torch.special.gammainc(leaf.detach() + h, x) - torch.special.gammainc(leaf.detach() - h, x)
    ) / (2 * h)
    relative = (grad - reference).abs() / reference.abs().clamp_min(1e-12)
    assert relative.max() < 1e-3, relative.max()


@pytest.mark.parametrize("autocast", [None, torch.bfloat16])
@pytest.mark.parametrize("objective", ["elbo", "iwae"])
@pytest.mark.parametrize("name", ["implicit", "score_function"])
def test_gamma_vae_stays_finite_for_concentrations_from_1e_minus_3_to_1e3(name, objective, autocast):
    alphas = torch.logspace(-3, 3, 25)
    model = build_model("gamma", name, objective, latent_settings={"dim": 25, "floor": 1e-5})
    inverse_softplus = lambda y: y + torch.log(-torch.expm1(-y))
    with torch.no_grad():  # concentrations 1e-3 ... 1e3 and rate 1, whatever the input
        model.model.latent.head.weight.zero_()
        model.model.latent.head.bias.copy_(
            torch.cat([inverse_softplus(alphas - 1e-5), inverse_softplus(torch.ones(25))])
        )
    x = torch.rand(8, 1, 28, 28).bernoulli()
    context = torch.autocast("cpu", dtype=autocast) if autocast else torch.autocast("cpu", enabled=False)
    samples = []  # the objective draws through model.training_sample: record its draws
    draw = model.model.training_sample

    def record(q, shape=()):
        made = draw(q, shape)
        samples.append(made.value)
        return made

    model.model.training_sample = record
    with context:
        loss, terms = model.objective(model.model, x)
    q = model.model.posterior(x)
    torch.testing.assert_close(q.base_dist.concentration[0], alphas, rtol=1e-3, atol=0)
    assert torch.isfinite(samples[0]).all() and torch.isfinite(loss)
    assert all(torch.isfinite(value) for value in terms.values())
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    with context:
        assert torch.isfinite(model.model.importance_weighted_nll(x, 10)).all()


def test_gamma_kl_matches_its_closed_form_and_a_monte_carlo_estimate():
    torch.manual_seed(5)
    latent = GammaLatent(in_features=6, dim=4)
    q = latent.posterior(torch.randn(3, 6))
    a, b = q.base_dist.concentration, q.base_dist.rate
    a0, b0 = 0.3, 0.3
    closed = (
        (a - a0) * torch.digamma(a)
        - torch.lgamma(a)
        + math.lgamma(a0)
        + a0 * (b.log() - math.log(b0))
        + a * (b0 - b) / b
    ).sum(-1)
    torch.testing.assert_close(latent.kl(q), closed)
    z = q.sample((200_000,))
    draws = q.log_prob(z) - latent.prior().log_prob(z)
    mean, stderr = draws.mean(0), draws.std(0) / math.sqrt(len(draws))
    assert torch.all((mean - closed).abs() < 4 * stderr)


def test_moving_average_baseline_uses_only_earlier_batches_and_is_checkpointed():
    estimator = ScoreFunctionEstimator(decay=0.5)
    q = Normal(torch.zeros(4, requires_grad=True), torch.ones(4))
    z = estimator.sample(q)
    first = estimator.surrogate(q, Draw(z), Cost(torch.full((4,), 10.0), None))
    estimator.update_statistics(Cost(torch.full((4,), 10.0), None))
    torch.testing.assert_close(first, 10.0 * q.log_prob(z))  # no baseline before the first batch
    assert estimator.baseline_value.item() == 10.0
    second = estimator.surrogate(q, Draw(z), Cost(torch.full((4,), 20.0), None))
    estimator.update_statistics(Cost(torch.full((4,), 20.0), None))
    torch.testing.assert_close(second, (20.0 - 10.0) * q.log_prob(z))  # b from the earlier batch only
    assert estimator.baseline_value.item() == 15.0
    assert set(estimator.state_dict()) == {"baseline_value", "baseline_started"}
    assert not z.requires_grad  # the score-function sample carries no gradient; the surrogate does


def test_a_score_function_surrogate_over_k_samples_is_unbiased_for_a_cost_of_all_k():
    """The IWAE-like cost c(z_1..z_k) = -log mean_i exp(-(z_i - 1)^2) of k = 4 Normal samples per image:
    the score-function gradient (joint log q over the k samples) and the pathwise gradient estimate the
    same derivative of E[c] with respect to loc and scale."""
    torch.manual_seed(6)
    draws, k = 200_000, 4
    results = []
    for estimator in (PathwiseEstimator(), ScoreFunctionEstimator(baseline="none")):
        loc = torch.full((draws,), 0.3, dtype=torch.float64, requires_grad=True)
        scale = torch.full((draws,), 0.8, dtype=torch.float64, requires_grad=True)
        q = Normal(loc, scale)
        z = estimator.sample(q, (k,))
        assert z.shape == (k, draws)

        def cost(z):
            return math.log(k) - torch.logsumexp(-((z - 1) ** 2), dim=0)

        value = cost(z)
        surrogate = estimator.surrogate(q, Draw(z), Cost(value, cost))
        (value + (surrogate if surrogate is not None else 0)).sum().backward()
        results.append((loc.grad, scale.grad))
    for pathwise, score in zip(*results):
        difference = pathwise.mean() - score.mean()
        stderr = math.sqrt((pathwise.var() + score.var()).item() / draws)
        assert abs(difference.item()) < 4 * stderr, (pathwise.mean(), score.mean(), stderr)
