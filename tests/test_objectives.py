"""The objectives against their formulas: the IWAE bound and its gradient, k = 1, Jensen's gap, and the
ELBO's beta and KL modes; the estimator's surrogate adds gradient but no value."""

from __future__ import annotations

import math

import pytest
import torch

from tests.conftest import build_model
from vae_zoo.errors import ConfigError
from vae_zoo.estimators import PathwiseEstimator
from vae_zoo.objectives.iwae import negative_log_mean_exp


def _batch(n: int = 12) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0)).bernoulli()


def _gradients(model, loss: torch.Tensor) -> list[torch.Tensor]:
    model.zero_grad()
    loss.backward()
    return [p.grad.clone() for p in model.parameters() if p.grad is not None]


def test_iwae_gradient_is_the_normalized_weights_times_the_log_weight_gradients():
    """grad log (1/k) sum w_i = sum_i w~_i grad log w_i with w~ = w / sum w held constant (PyTorch-VAE #34
    differentiated through the weights)."""
    model = build_model(objective="iwae", objective_settings={"k": 6}, latent_settings={"dim": 4})
    x = _batch()
    torch.manual_seed(1)
    loss, terms = model.objective(model.model, x)
    ours = _gradients(model, loss)

    torch.manual_seed(1)
    q = model.model.posterior(x)
    log_w = model.model.log_weights(x, q, model.model.training_sample(q, (6,)).value)
    weights = torch.softmax(log_w, dim=0).detach()
    reference = _gradients(model, -(weights * log_w).sum(0).mean())
    for mine, theirs in zip(ours, reference):  # float32 sums over 784 pixels in another order
        torch.testing.assert_close(mine, theirs, rtol=1e-3, atol=1e-4 * theirs.abs().max().item())
    torch.testing.assert_close(terms["iwae_6"], (math.log(6) - torch.logsumexp(log_w, 0)).mean().detach())


def test_the_bounds_gradient_identity_holds_exactly_in_float64():
    torch.manual_seed(7)
    theta = torch.randn(3, dtype=torch.float64, requires_grad=True)
    z = torch.randn(8, 5, 3, dtype=torch.float64)  # k = 8 samples of 5 images
    log_w = -((z * theta).sum(-1) - 1).square()  # any differentiable log-weights
    (ours,) = torch.autograd.grad(negative_log_mean_exp(log_w).sum(), theta, retain_graph=True)
    weights = torch.softmax(log_w, dim=0).detach()
    (reference,) = torch.autograd.grad(-(weights * log_w).sum(), theta)
    torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-12)


def test_iwae_with_one_sample_is_the_elbo_with_a_one_sample_kl():
    x = _batch()
    results = []
    for objective, settings in (("iwae", {"k": 1}), ("elbo", {"kl": "mc"})):
        torch.manual_seed(0)
        model = build_model(objective=objective, objective_settings=settings, latent_settings={"dim": 4})
        torch.manual_seed(2)
        loss, _ = model.objective(model.model, x)
        results.append((loss.detach(), _gradients(model, loss)))
    (iwae_loss, iwae_grads), (elbo_loss, elbo_grads) = results
    torch.testing.assert_close(iwae_loss, elbo_loss)
    for a, b in zip(iwae_grads, elbo_grads):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("k", [2, 5, 50])
def test_the_iwae_term_is_never_above_the_mean_negative_log_weight_of_the_same_samples(k):
    model = build_model(objective="iwae", objective_settings={"k": k}, latent_settings={"dim": 4})
    torch.manual_seed(3)
    _, terms = model.objective(model.model, _batch())
    assert terms[f"iwae_{k}"] <= terms["elbo"]  # Jensen: -log mean w <= mean(-log w), per image


def test_the_iwae_evaluation_bound_is_the_models_importance_weighted_bound_with_k_samples():
    model = build_model(objective="iwae", objective_settings={"k": 5}, latent_settings={"dim": 4})
    x = _batch()
    torch.manual_seed(4)
    bound = model.objective.bound(model.model, x)
    torch.manual_seed(4)
    torch.testing.assert_close(bound, model.model.importance_weighted_nll(x, 5))
    assert model.validation_metrics == ("val/elbo", "val/recon", "val/kl", "val/iwae_5")


@pytest.mark.parametrize("beta", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("kl", ["analytic", "mc"])
def test_elbo_loss_is_recon_plus_beta_kl_and_its_terms_the_true_negative_elbo(beta, kl):
    model = build_model(objective_settings={"beta": beta, "kl": kl}, latent_settings={"dim": 4})
    x = _batch()
    torch.manual_seed(5)
    loss, terms = model.objective(model.model, x)
    torch.manual_seed(5)
    q = model.model.posterior(x)
    z = model.model.training_sample(q).value
    recon = model.model.nll(x, z)
    kl_value = model.model.kl(q) if kl == "analytic" else model.model.kl_estimate(q, z)
    torch.testing.assert_close(loss, (recon + beta * kl_value).mean())
    torch.testing.assert_close(terms["elbo"], (recon + kl_value).mean().detach())
    torch.testing.assert_close(terms["recon"] + terms["kl"], terms["elbo"])


@pytest.mark.parametrize("objective", ["elbo", "iwae"])
def test_a_score_function_surrogate_adds_gradient_but_no_value_to_the_loss(objective):
    x = _batch()
    losses = {}
    for estimator in ("pathwise", "score_function"):
        torch.manual_seed(0)
        model = build_model(estimator=estimator, objective=objective, latent_settings={"dim": 4})
        torch.manual_seed(6)
        losses[estimator], _ = model.objective(model.model, x)
    torch.testing.assert_close(losses["score_function"], losses["pathwise"])  # same samples, same value
    grads = _gradients(model, losses["score_function"])
    assert model.model.latent.head.weight.grad.abs().sum() > 0 and all(torch.isfinite(g).all() for g in grads)


class RecordingPathwise(PathwiseEstimator):
    """Pathwise sampling that keeps the cost each objective hands to the surrogate."""

    def surrogate(self, q, draw, cost):
        self.seen = (draw.value, cost)


@pytest.mark.parametrize(
    ("objective", "settings"), [("elbo", {}), ("elbo", {"kl": "mc"}), ("iwae", {"k": 4})]
)
def test_the_cost_function_an_objective_hands_the_estimator_reproduces_its_value_at_the_sample(
    objective, settings
):
    model = build_model(objective=objective, objective_settings=settings, latent_settings={"dim": 4})
    model.model.estimator = RecordingPathwise()
    torch.manual_seed(8)
    model.objective(model.model, _batch())
    z, cost = model.model.estimator.seen
    torch.testing.assert_close(cost.at(z), cost.value)
    assert cost.value.shape == (12,)  # per image; IWAE's is a joint function of the 4 samples


def test_a_one_sample_kl_refuses_relaxed_samples():
    with pytest.raises(ConfigError, match=r"does not pair with objective=elbo \(beta=1.0, kl=mc\)"):
        build_model("categorical", "gumbel_softmax", objective_settings={"kl": "mc"})
    build_model("categorical", "straight_through", objective_settings={"kl": "mc"})  # exactly one-hot
