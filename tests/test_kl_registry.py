"""KL through torch's registry: each family's closed form is registered for its distribution classes, the model
decides once at build time whether ``kl_divergence(q, p)`` exists for its posterior and prior component, and a
learned prior with a closed form (``prior=learned_normal``) is one ``.py`` and one ``.yaml``."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import kl_divergence

from tests.conftest import build_model, component
from vae_zoo.config_groups import options
from vae_zoo.errors import ConfigError

CLOSED_FORM = {
    "normal",
    "categorical",
    "bernoulli",
    "gamma",
    "beta",
    "dirichlet",
    "von_mises",
    "truncated_normal",
    "von_mises_fisher",
    "power_spherical",
    "vector_quantized",
}
SETTINGS = {
    "categorical": {"n": 3, "k": 4},
    "dirichlet": {"n": 2, "k": 3},
    "vector_quantized": {"positions": 3, "k": 4, "prior": "learned"},
}
#: the first estimator of each family that is not the score function (which pairs with all but a point mass)
ESTIMATORS = {
    "categorical": "gumbel_softmax",
    "bernoulli": "disarm",
    "normal": "pathwise",
    "vector_quantized": "pathwise",
}


@pytest.mark.parametrize("latent", sorted(options("latent")))
def test_the_standard_prior_has_a_closed_form_kl_exactly_where_the_registry_has_one(latent):
    model = build_model(
        latent, ESTIMATORS.get(latent, "score_function"), latent_settings=SETTINGS.get(latent, {"dim": 3})
    )
    assert model.model.closed_form_kl == (latent in CLOSED_FORM)
    assert model.model.kl_origin == ("closed form" if latent in CLOSED_FORM else "one-sample estimate")


@pytest.mark.parametrize("latent", sorted(CLOSED_FORM))
def test_every_registered_kl_is_the_mean_of_its_one_sample_estimate(latent):
    """In float64, 200,000 draws of ``log q(z) - log p(z)`` per posterior: the registered closed form within
    4 standard errors of their mean."""
    torch.manual_seed(0)
    vae = build_model(
        latent, ESTIMATORS.get(latent, "score_function"), latent_settings=SETTINGS.get(latent, {"dim": 3})
    )
    model = vae.model.double()
    x = torch.rand(2, 1, 28, 28, dtype=torch.float64).bernoulli()
    with torch.no_grad():
        q = model.posterior(x)
        closed = model.kl(q)
        z = q.sample((200_000,))
        estimates = q.log_prob(z) - model.prior_distribution().log_prob(z)
    mean, stderr = estimates.mean(0), estimates.std(0) / math.sqrt(len(estimates))
    assert torch.all((closed - mean).abs() < 4 * stderr + 1e-9), (closed, mean, stderr)


def test_a_learned_normal_prior_trains_with_the_closed_form_kl():
    torch.manual_seed(0)
    vae = build_model(prior=component("prior", "learned_normal"), latent_settings={"dim": 4})
    model = vae.model
    assert model.closed_form_kl and model.kl_origin == "closed form"
    with torch.no_grad():
        model.prior.loc.copy_(torch.tensor([0.5, -1.0, 0.0, 2.0]))
        model.prior.raw_scale.copy_(torch.tensor([0.0, 1.0, -1.0, 0.5]))
    x = torch.rand(3, 1, 28, 28).bernoulli()
    q = model.posterior(x)
    mu, sigma = q.base_dist.loc, q.base_dist.scale
    p = model.prior_distribution().base_dist
    by_hand = (
        torch.log(p.scale / sigma) + (sigma.square() + (mu - p.loc).square()) / (2 * p.scale.square()) - 0.5
    ).sum(-1)
    torch.testing.assert_close(model.kl(q), by_hand)
    loss, _ = vae.training_loss(x)
    loss.backward()
    assert model.prior.loc.grad.abs().sum() > 0 and model.prior.raw_scale.grad.abs().sum() > 0


def test_a_learned_normal_prior_estimates_the_kl_where_the_registry_has_none_and_refuses_what_it_cannot_fit():
    two_layers = build_model(
        "two_layer", prior=component("prior", "learned_normal"), latent_settings={"dim": 3, "top": 2}
    )
    assert two_layers.model.kl_origin == "one-sample estimate"
    with pytest.raises(
        ConfigError, match=r"^prior=learned_normal needs a density on all of R\^D, which latent=gamma"
    ):
        build_model("gamma", "implicit", prior=component("prior", "learned_normal"))


def test_the_registry_route_leaves_torchs_own_pairs_alone():
    """Registering the project's classes adds pairs; torch's own Normal-Normal KL is still torch's."""
    q = torch.distributions.Normal(torch.tensor([0.3]), torch.tensor([0.7]))
    p = torch.distributions.Normal(torch.tensor([0.0]), torch.tensor([1.0]))
    by_torch = torch.log(p.scale / q.scale) + (q.scale**2 + (q.loc - p.loc) ** 2) / (2 * p.scale**2) - 0.5
    torch.testing.assert_close(kl_divergence(q, p), by_torch)
