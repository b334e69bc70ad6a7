"""ReinMax (Liu et al. 2023): its gradient is a function of the drawn sample alone, so its mean is a sum over every
configuration, computed exactly here. At tau = 1 that mean is the exact gradient for a cost quadratic in the
sample, where straight-through's is not, and it is biased for a cubic cost or another temperature."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor
from torch.distributions import Bernoulli, Independent

from tests.conftest import build_model
from vae_zoo.errors import ConfigError
from vae_zoo.estimators.exactness import SmallModel, binary_model, categorical_model
from vae_zoo.estimators.reinmax import ReinMax, reinmax
from vae_zoo.estimators.relaxation import relaxation
from vae_zoo.latents.categorical import GumbelMaxOneHotCategorical

MODELS = {"binary": lambda: binary_model(dim=4), "categorical": lambda: categorical_model(n=2, k=3)}


def cubic(model: SmallModel):
    """The model's quadratic cost plus a cube of a projection of the sample."""
    weight = torch.linspace(-1.0, 1.5, model.features)
    return lambda z: model.f(z) + ((z.flatten(-2) if model.categorical else z) * weight).sum(-1).pow(3) / 3


def mean_estimate(model: SmallModel, temperature: float = 1.0, cost=None) -> Tensor:
    """``sum_D q(D) g(D)`` over every configuration ``D``, ``g(D)`` ReinMax's gradient given ``D``."""
    cost = cost or model.f
    logits = model.logits.clone().requires_grad_()
    q = model.posterior(logits)
    configs = model.configurations()
    probs = q.log_prob(configs).exp().detach()
    z = reinmax(relaxation(q), configs, temperature)
    (gradient,) = torch.autograd.grad((probs * cost(z)).sum(), logits)
    return gradient


def exact_gradient(model: SmallModel, cost) -> Tensor:
    logits = model.logits.clone().requires_grad_()
    configs = model.configurations()
    (gradient,) = torch.autograd.grad(
        (model.posterior(logits).log_prob(configs).exp() * cost(configs)).sum(), logits
    )
    return gradient


@pytest.mark.parametrize("kind", MODELS)
def test_its_mean_is_the_exact_gradient_of_a_quadratic_cost(kind):
    model = MODELS[kind]()
    exact = model.exact_gradient()
    assert exact.norm() > 0.1  # a gradient worth estimating
    torch.testing.assert_close(mean_estimate(model), exact, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", MODELS)
def test_it_is_biased_beyond_second_order_and_at_another_temperature(kind):
    """Negative controls of the same sum: a cubic cost, and tau = 2 on the quadratic one."""
    model = MODELS[kind]()
    cost = cubic(model)
    exact = exact_gradient(model, cost)
    assert (mean_estimate(model, cost=cost) - exact).norm() > 0.01 * exact.norm()
    assert (mean_estimate(model, temperature=2.0) - model.exact_gradient()).norm() > 0.01 * exact.norm()


@pytest.mark.parametrize("kind", MODELS)
def test_it_is_heuns_rule_where_straight_through_is_eulers(kind):
    """The estimate given ``D`` is ``(2 J(pi_1) - J(pi_0) / 2) grad f(D)``, with ``pi_1 = (softmax(t / tau) + D) / 2``,
    written out with the softmax's Jacobian ``J(p) = diag(p) - p p^T`` (binary: ``s (1 - s)``)."""
    torch.manual_seed(0)
    model, tau = MODELS[kind](), 1.5
    logits = model.logits.clone().requires_grad_()
    q = model.posterior(logits)
    hard = q.sample()
    upstream = torch.randn_like(hard)
    (gradient,) = torch.autograd.grad((reinmax(relaxation(q), hard, tau) * upstream).sum(), logits)
    if model.categorical:
        jacobian = lambda p: torch.diag_embed(p) - p.unsqueeze(-1) * p.unsqueeze(-2)
        first, tempered = logits.detach().softmax(-1), (logits.detach() / tau).softmax(-1)
        mixed = 2 * jacobian((tempered + hard) / 2) - jacobian(first) / 2
        expected = (mixed @ upstream.unsqueeze(-1)).squeeze(-1)
    else:
        jacobian = lambda s: s * (1 - s)
        first, tempered = torch.sigmoid(logits.detach()), torch.sigmoid(logits.detach() / tau)
        expected = (2 * jacobian((tempered + hard) / 2) - jacobian(first) / 2) * upstream
    torch.testing.assert_close(gradient, expected, rtol=1e-5, atol=1e-6)


def test_a_bernoulli_is_the_categorical_of_two_classes():
    """Logit ``a`` against logits ``(0, a)``: the same gradient for the same cost of the sample."""
    a = torch.linspace(-2.0, 3.0, 6).requires_grad_()
    b = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0, 0.0])
    upstream = torch.linspace(-1.0, 2.0, 6)
    binary = relaxation(Independent(Bernoulli(logits=a), 1))
    (by_bernoulli,) = torch.autograd.grad((reinmax(binary, b, 1.3) * upstream).sum(), a)
    pair = torch.stack([torch.zeros_like(a), a], -1)
    categorical = relaxation(Independent(GumbelMaxOneHotCategorical(logits=pair), 1))
    one_hot = torch.stack([1 - b, b], -1)
    (by_categorical,) = torch.autograd.grad((reinmax(categorical, one_hot, 1.3)[..., 1] * upstream).sum(), a)
    torch.testing.assert_close(by_bernoulli, by_categorical)


@pytest.mark.parametrize("latent", ["bernoulli", "categorical"])
def test_it_draws_straight_throughs_exact_sample(latent):
    """The forward value is the exact sample, the same draw as straight-through's from the same generator."""
    x = torch.rand(16, 1, 28, 28).bernoulli()
    samples = []
    for name in ("reinmax", "straight_through"):
        torch.manual_seed(0)
        model = build_model(latent, name).model
        torch.manual_seed(1)
        samples.append(model.training_sample(model.posterior(x)).value)
    assert torch.equal(*samples)
    assert set(samples[0].unique().tolist()) == {0.0, 1.0}


def test_a_temperature_not_above_zero_is_refused_in_one_line():
    with pytest.raises(ConfigError) as refused:
        ReinMax(temperature=0)
    assert str(refused.value) == "model.estimator.temperature=0 must be > 0 (1 or more, Liu et al.)"
