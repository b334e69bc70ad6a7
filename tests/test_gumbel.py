"""Gumbel-Max sampling, the Gumbel-Softmax relaxation and straight-through, checked numerically."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import kl_divergence

from tests.conftest import build_model
from vae_zoo.estimators import GumbelSoftmaxEstimator, StraightThroughEstimator
from vae_zoo.estimators.relaxation import CategoricalRelaxation
from vae_zoo.latents.categorical import CategoricalLatent, GumbelMaxOneHotCategorical
from vae_zoo.latents.gumbel import gumbel_max, gumbel_noise


def chi_square_p_value(counts: torch.Tensor, probs: torch.Tensor) -> float:
    """Pearson's test of ``counts`` against ``probs``; classes expecting < 5 draws are pooled into one bin."""
    expected = probs.double() * counts.sum()
    small = expected < 5
    observed = torch.cat([counts[~small].double(), counts[small].double().sum().reshape(1)])
    expected = torch.cat([expected[~small], expected[small].sum().reshape(1)])
    keep = expected > 0
    observed, expected = observed[keep], expected[keep]
    statistic = ((observed - expected) ** 2 / expected).sum()
    dof = len(expected) - 1
    return torch.special.gammaincc(torch.tensor(dof / 2.0), statistic / 2).item()  # chi2 survival function


def drawn(seed: int, draw):
    """``draw()`` with torch's generator seeded, leaving the global stream as it was: module-level vectors that
    do not depend on which test modules were imported (and drew) before this one."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return draw()


PROBABILITY_VECTORS = {
    "uniform": torch.full((10,), 0.1),
    "random": drawn(0, torch.distributions.Dirichlet(torch.ones(10)).sample),
    "peaked": torch.softmax(torch.linspace(0, 12, 10), 0),  # top class ~0.9997 of the mass
    "two_classes": torch.tensor([0.999, 0.001]),
    "sparse": drawn(1, torch.distributions.Dirichlet(torch.full((50,), 0.1)).sample),
}


@pytest.mark.parametrize("name", PROBABILITY_VECTORS)
def test_gumbel_max_class_frequencies_match_the_probabilities(name):
    torch.manual_seed(0)
    probs = PROBABILITY_VECTORS[name]
    draws = gumbel_max(probs.log(), (200_000,))
    assert torch.all(draws.sum(-1) == 1) and set(draws.unique().tolist()) <= {0.0, 1.0}
    assert chi_square_p_value(draws.sum(0), probs) > 0.001


def test_chi_square_check_rejects_a_wrong_sampler():
    torch.manual_seed(0)
    probs = PROBABILITY_VECTORS["random"]
    wrong = gumbel_max(1.3 * probs.log(), (200_000,))  # samples p^1.3 / Z, slightly sharper than p
    assert chi_square_p_value(wrong.sum(0), probs) < 1e-6


def test_extreme_logits_put_every_draw_on_the_argmax():
    logits = torch.tensor([1e4, -1e4, 0.0, -1e4])
    assert torch.equal(gumbel_max(logits, (10_000,)).sum(0), torch.tensor([10_000.0, 0, 0, 0]))


def test_relaxed_samples_approach_one_hot_and_their_mean_the_probabilities_as_tau_falls():
    torch.manual_seed(1)
    probs = PROBABILITY_VECTORS["random"]
    logits = probs.log().expand(100_000, -1)
    largest, errors = [], []
    for tau in (1.0, 0.3, 0.1, 0.01, 0.001):
        relaxing = CategoricalRelaxation(logits)
        z = relaxing.relax(relaxing.perturb(), tau)
        torch.testing.assert_close(z.sum(-1), torch.ones(len(z)))
        largest.append(z.max(-1).values.mean().item())
        errors.append((z.mean(0) - probs).abs().max().item())
    assert largest == sorted(largest) and largest[-1] > 0.999  # one-hot in the limit
    assert errors[0] > 0.02 and errors[-1] < 0.005  # E[z] -> p; 100k draws put the noise near 0.0015


def _posterior(logits: torch.Tensor):
    return torch.distributions.Independent(GumbelMaxOneHotCategorical(logits=logits), 1)


def test_straight_through_is_exactly_one_hot_forward_with_the_relaxed_gradient_backward():
    logits = torch.randn(64, 20, 10)
    weights = torch.randn(20, 10)
    grads = {}
    for estimator in (GumbelSoftmaxEstimator(0.7), StraightThroughEstimator(0.7)):
        leaf = logits.clone().requires_grad_()
        torch.manual_seed(5)  # the same Gumbel noise for both
        z = estimator.sample(_posterior(leaf))
        (z * weights).sum().backward()
        grads[type(estimator).__name__] = leaf.grad
        if isinstance(estimator, StraightThroughEstimator):
            hard = torch.nn.functional.one_hot(z.argmax(-1), 10).float()
            assert torch.equal(z, hard)  # exactly, not approximately
    torch.testing.assert_close(
        grads["StraightThroughEstimator"], grads["GumbelSoftmaxEstimator"], rtol=0, atol=0
    )


def test_gumbel_noise_is_finite_even_for_uniforms_of_exactly_zero_and_one(monkeypatch):
    monkeypatch.setattr(torch, "rand", lambda shape, **kw: torch.tensor([0.0, 1.0, 0.5]).to(kw.get("dtype")))
    noise = gumbel_noise((3,), torch.device("cpu"))
    assert torch.isfinite(noise).all() and noise.min() > -5 and noise.max() < 17


def test_categorical_kl_matches_a_monte_carlo_estimate_with_exact_samples():
    torch.manual_seed(2)
    latent = CategoricalLatent(in_features=8, n=3, k=5, prior="learned")
    with torch.no_grad():
        latent.prior_logits.copy_(torch.randn(3, 5))
    q = latent.posterior(torch.randn(4, 8) * 3)
    analytic = latent.kl(q)
    torch.testing.assert_close(analytic, kl_divergence(q, latent.prior()))  # torch's general categorical KL
    z = q.sample((200_000,))
    draws = q.log_prob(z) - latent.prior().log_prob(z)
    mean, stderr = draws.mean(0), draws.std(0) / math.sqrt(len(draws))
    assert torch.all((mean - analytic).abs() < 4 * stderr), (mean, analytic, stderr)


def test_a_learned_prior_is_trained_by_the_kl_and_a_uniform_one_is_not():
    learned, uniform = CategoricalLatent(8, n=2, k=3, prior="learned"), CategoricalLatent(8, n=2, k=3)
    assert {n for n, _ in learned.named_parameters()} == {"head.weight", "head.bias", "prior_logits"}
    assert "prior_logits" not in dict(uniform.named_parameters())
    q = learned.posterior(torch.randn(4, 8))
    learned.kl(q).sum().backward()
    assert learned.prior_logits.grad.abs().sum() > 0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("estimator", ["gumbel_softmax", "straight_through", "reinmax"])
def test_half_precision_with_logits_of_1e4_keeps_samples_and_loss_finite(dtype, estimator):
    torch.manual_seed(3)
    model = build_model(
        "categorical", estimator, latent_settings={"n": 4, "k": 5}, estimator_settings={"temperature": 0.5}
    )
    with torch.no_grad():  # logits of +-1e4 whatever the input
        model.model.latent.head.weight.zero_()
        model.model.latent.head.bias.copy_(torch.tensor([1e4, -1e4, 0.0, -1e4, 1e4]).repeat(4))
    x = torch.rand(16, 1, 28, 28).bernoulli()
    samples = []
    with torch.autocast("cpu", dtype=dtype):
        recon, kl = model.model.negative_elbo_terms(
            x, lambda q: samples.append(model.model.estimator.sample(q)) or samples[-1]
        )
        loss = (recon + kl).mean()
    assert torch.isfinite(samples[0]).all() and torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    with torch.autocast("cpu", dtype=dtype):
        assert torch.isfinite(model.model.importance_weighted_nll(x, 20)).all()
