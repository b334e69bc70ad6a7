"""The discrete-gradient estimators against the exact gradient of E_q[f(z)], summed over every configuration of
a small model (5 Bernoulli units; 2 categoricals of 3 classes; the k-sample bound over every k-tuple): each
unbiased estimator's mean over 20,000 draws lies within 4 standard errors of it per logit, and the same test
rejects biased ones. Then the variance orderings the papers report, on the same models."""

from __future__ import annotations

import pytest
import torch

from vae_zoo.estimators.estimator import Cost, Estimator, joint_log_prob
from vae_zoo.estimators.exactness import SmallModel, binary_model, categorical_model, total_variance
from vae_zoo.estimators.reinforce_loo import ReinforceLOO

DRAWS = 20_000
MODELS = {"binary": binary_model, "categorical": categorical_model}


def estimator(name: str, model: SmallModel, **settings) -> Estimator:
    return model.estimator(name, **settings)


UNBIASED = {
    "binary": ["score_function", "reinforce_loo", "nvil", "arm", "disarm", "rebar", "relax"],
    "categorical": ["score_function", "reinforce_loo", "nvil", "rebar", "relax"],
}


@pytest.mark.parametrize(
    ("kind", "name"), [(kind, name) for kind, names in UNBIASED.items() for name in names]
)
def test_an_unbiased_estimators_mean_is_the_exact_gradient(kind, name):
    torch.manual_seed(0)
    model = MODELS[kind]()
    z, mean, exact, _ = model.z_scores(estimator(name, model), DRAWS)
    assert z.abs().max() < 4, (mean, exact)


@pytest.mark.parametrize("kind", MODELS)
def test_vimco_is_unbiased_for_the_gradient_of_the_k_sample_bound(kind):
    torch.manual_seed(1)
    model = binary_model(dim=3) if kind == "binary" else categorical_model(n=2, k=2)
    z, mean, exact, _ = model.z_scores(estimator("vimco", model), DRAWS, samples=3)
    assert z.abs().max() < 4, (mean, exact)
    assert exact.abs().max() > 0.05  # a gradient worth estimating


@pytest.mark.parametrize("kind", MODELS)
def test_learned_parameters_keep_the_estimators_unbiased(kind):
    """NVIL's baseline and REBAR's and RELAX's temperature, scale and network, trained on their own
    objectives: still unbiased (NVIL normalising, up to its signal's positive scale ``1 / max(1, s)``,
    undone here)."""
    torch.manual_seed(2)
    model = MODELS[kind]()
    for name, settings in [("nvil", {}), ("nvil", {"normalise": True}), ("rebar", {}), ("relax", {})]:
        trained = estimator(name, model, **settings)
        model.train_estimator(trained, steps=150)
        scale = trained.signal_scale().item() if name == "nvil" else 1.0
        z, _, _, _ = model.z_scores(trained, DRAWS, scale=scale)
        assert z.abs().max() < 4, (name, settings)


class SelfIncludingLOO(ReinforceLOO):
    """A leave-one-out baseline that forgets to leave the draw out: it depends on the sample, so it is biased
    (by a factor (k - 1) / k of the gradient)."""

    def surrogate(self, q, draw, cost: Cost):
        value = cost.value.detach()
        return (value - value.mean(0, keepdim=True)) * joint_log_prob(q, draw.value, value, self.draws)


@pytest.mark.parametrize("kind", MODELS)
def test_the_same_test_rejects_biased_estimators(kind):
    torch.manual_seed(3)
    model = MODELS[kind]()
    for biased in (
        SelfIncludingLOO(2),
        *(estimator(name, model) for name in ("straight_through", "gumbel_softmax", "gumbel_rao")),
    ):
        z, _, _, _ = model.z_scores(biased, DRAWS)
        assert z.abs().max() > 10, type(biased).__name__


@pytest.mark.parametrize("kind", MODELS)
def test_gumbel_rao_has_straight_throughs_mean_and_a_lower_variance(kind):
    """Rao-Blackwellising straight-through over the noise given the sample keeps its expectation (and so its
    bias) and lowers its variance."""
    torch.manual_seed(5)
    model = MODELS[kind]()
    straight = model.estimates(estimator("straight_through", model), DRAWS)
    rao = model.estimates(estimator("gumbel_rao", model), DRAWS)
    error = (straight.var(0) / DRAWS + rao.var(0) / DRAWS).sqrt()
    assert ((straight.mean(0) - rao.mean(0)).abs() / error).max() < 4
    assert total_variance(rao) < total_variance(straight)


def variance(name: str, model: SmallModel, train: int = 0, **settings) -> float:
    chosen = estimator(name, model, **settings)
    model.train_estimator(chosen, steps=train)
    return total_variance(model.estimates(chosen, DRAWS))


@pytest.mark.parametrize("kind", MODELS)
def test_variance_orderings_of_the_papers(kind):
    torch.manual_seed(4)
    model = MODELS[kind]()
    one_sample = variance("score_function", model, baseline="none")
    loo = variance("reinforce_loo", model)
    assert (
        loo < one_sample / 4
    )  # two draws and a baseline: measured 0.09 (binary) and 0.01 (categorical) of it
    assert variance("relax", model, train=300) < loo  # the learned surrogate beats two draws
    assert variance("rebar", model, train=300) < one_sample / 4  # the relaxation's control variate
    if kind == "binary":
        assert variance("disarm", model) <= variance("arm", model)  # Rao-Blackwellised over the noise
