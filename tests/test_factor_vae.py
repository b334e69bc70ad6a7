"""``discriminator=mlp`` with ``objective.factor_weight``: FactorVAE (Kim & Mnih 2018). Permuting each unit across the
batch keeps every unit's values and breaks their dependence; a discriminator trained on its loss estimates the total
correlation of correlated Gaussians to within its capacity, pointwise the log density ratio; in the ELBO it trains
on its own loss alone while the VAE's loss gains ``gamma`` times its logit, which moves the encoder and not the
discriminator; and it is refused in one line where it cannot work. Each model of a pack has its own ``gamma``:
test_packing.py."""

from __future__ import annotations

import math
import re

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal
from torch.nn.functional import softplus

from tests.conftest import SMALL_RUN, build_model, component, mnist_like, refusal
from vae_zoo.active_units import UnitSpread
from vae_zoo.cli import train
from vae_zoo.errors import ConfigError
from vae_zoo.models.vae import evaluation_terms
from vae_zoo.mutual_information import AggregatePosterior
from vae_zoo.objectives.elbo import ELBO
from vae_zoo.objectives.factor_discriminator import FactorDiscriminator, discriminator_terms, permuted_units

DISCRIMINATOR = component("discriminator", "mlp", hidden=[16, 16])


def test_permuting_keeps_each_units_values_within_each_models_images():
    """Three packed models of 50 images, 4 units of 3 coordinates each (a one-hot's whole event moves)."""
    torch.manual_seed(0)
    z = torch.randn(150, 4, 3)
    permuted = permuted_units(z, models=3)
    for n in range(3):
        rows = slice(50 * n, 50 * n + 50)
        for unit in range(4):
            before, after = z[rows, unit], permuted[rows, unit]
            assert sorted(map(tuple, before.tolist())) == sorted(map(tuple, after.tolist()))
    assert not torch.equal(permuted, z)


def test_permuting_breaks_the_dependence_between_units():
    """Two units equal in every image: after permuting, their correlation is that of independent draws."""
    torch.manual_seed(0)
    z = torch.randn(20000, 1).expand(-1, 2)
    permuted = permuted_units(z)
    correlation = torch.corrcoef(permuted.T)[0, 1]
    assert abs(correlation) < 4 / math.sqrt(20000)


def _trained_discriminator(q: MultivariateNormal, steps: int = 600) -> FactorDiscriminator:
    """A discriminator of two hidden layers trained on ``discriminator_terms``'s loss, fresh samples each step."""
    torch.manual_seed(0)
    discriminator = FactorDiscriminator(2, hidden=[32, 32])
    optimizer = torch.optim.Adam(discriminator.parameters(), lr=3e-3)
    for _ in range(steps):
        loss = discriminator_terms(discriminator, q.sample((512,))).loss.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return discriminator


@pytest.mark.parametrize("rho", [0.0, 0.8])
def test_the_trained_discriminator_estimates_the_total_correlation(rho):
    """Two standard Normal units of correlation ``rho``: ``TC = -log(1 - rho^2) / 2`` (0 and 0.511 nats), the mean
    of the exact ``log q(z) - log q(z_1) - log q(z_2)``, which the logit matches pointwise to 0.15 on average."""
    q = MultivariateNormal(torch.zeros(2), torch.tensor([[1.0, rho], [rho, 1.0]]))
    discriminator = _trained_discriminator(q)
    z = q.sample((100000,))
    exact = q.log_prob(z) - Normal(0.0, 1.0).log_prob(z).sum(-1)
    with torch.no_grad():
        logit = discriminator(z)
    assert logit.mean().item() == pytest.approx(-math.log(1 - rho**2) / 2, abs=0.05)
    assert (logit - exact).abs().mean() < 0.15


def test_the_terms_are_the_logit_and_the_cross_entropy_at_a_permuted_sample():
    torch.manual_seed(0)
    discriminator, z = FactorDiscriminator(6, hidden=[8]), torch.randn(10, 3, 2)
    state = torch.get_rng_state()
    terms = discriminator_terms(discriminator, z)
    torch.set_rng_state(state)
    permuted = permuted_units(z)
    with torch.no_grad():
        real, fake = discriminator(z), discriminator(permuted)
    torch.testing.assert_close(terms.tc, real)
    torch.testing.assert_close(terms.loss, (softplus(-real) + softplus(fake)) / 2)


def _step_gradients(factor_weight: float) -> tuple[dict, dict, torch.Tensor, dict]:
    """One training loss of a small model with a discriminator: the gradients of the encoder's and the
    discriminator's parameters, the loss and its terms (the same samples and permutation for every weight)."""
    torch.manual_seed(0)
    vae = build_model(objective_settings={"factor_weight": factor_weight}, discriminator=DISCRIMINATOR)
    torch.manual_seed(1)
    loss, terms = vae.objective(vae.model, mnist_like(16, seed=0))
    loss.backward()
    grads = lambda module: {n: p.grad.clone() for n, p in module.named_parameters()}
    return grads(vae.model.encoder), grads(vae.model.discriminator), loss.detach(), terms


def test_the_weight_moves_the_encoder_by_the_logit_and_not_the_discriminator():
    """The loss is the ELBO plus ``gamma`` times the mean logit (the discriminator's loss adds 0 to its value); the
    discriminator's gradient is its loss's alone, the same at ``gamma = 0`` and 10, and the encoder's gradient moves
    by ``gamma`` times the mean logit's."""
    encoder_0, discriminator_0, loss_0, terms_0 = _step_gradients(0.0)
    encoder_10, discriminator_10, loss_10, terms_10 = _step_gradients(10.0)
    torch.testing.assert_close(loss_0, terms_0["elbo"])
    torch.testing.assert_close(loss_10, terms_10["elbo"] + 10 * terms_10["factor_tc"])
    torch.testing.assert_close(terms_10["discriminator"], terms_0["discriminator"])
    for name, grad in discriminator_0.items():
        assert grad.abs().sum() > 0
        torch.testing.assert_close(discriminator_10[name], grad, rtol=0, atol=0)
    # the logit's own gradient at the encoder, from the same sample: gamma = 10 minus gamma = 0, over 10
    torch.manual_seed(0)
    vae = build_model(objective_settings={"factor_weight": 10.0}, discriminator=DISCRIMINATOR)
    torch.manual_seed(1)
    terms = vae.objective.terms_per_image(vae.model, mnist_like(16, seed=0))
    logit_grads = torch.autograd.grad(terms.factor.tc.mean(), list(vae.model.encoder.parameters()))
    for (name, grad), logit_grad in zip(encoder_0.items(), logit_grads):
        torch.testing.assert_close((encoder_10[name] - grad) / 10, logit_grad, rtol=1e-4, atol=1e-7)


def test_without_weight_the_discriminator_leaves_the_vaes_gradient_alone():
    """With ``gamma = 0`` the encoder's gradient is bit for bit that of the same model and samples without the
    discriminator's terms (its permutation draws after the sample)."""
    encoder_0, _, loss_0, _ = _step_gradients(0.0)
    torch.manual_seed(0)
    vae = build_model(discriminator=DISCRIMINATOR)
    vae.model.discriminator = None
    torch.manual_seed(1)
    loss, _ = vae.objective(vae.model, mnist_like(16, seed=0))
    loss.backward()
    assert torch.equal(loss.detach(), loss_0)
    for name, p in vae.model.encoder.named_parameters():
        assert torch.equal(p.grad, encoder_0[name])


@pytest.mark.parametrize("stage", ["val", "test"])
def test_evaluation_reports_the_logit_at_each_exact_sample_as_the_held_out_total_correlation(stage):
    """``factor_tc`` per image is ``l(z)`` at the posterior sample the negative ELBO is reported at (its mean over
    held-out images: the discriminator's estimate of their codes' TC); a model without a discriminator has none."""
    torch.manual_seed(0)
    vae = build_model(discriminator=DISCRIMINATOR)
    x = mnist_like(16, seed=0)
    evaluate = lambda: evaluation_terms(
        vae.model, vae.objective, x, stage, 4, UnitSpread(), AggregatePosterior()
    )
    torch.manual_seed(1)
    values = evaluate()
    torch.manual_seed(1)
    z = vae.model.posterior(x).sample()
    assert torch.equal(values["factor_tc"], vae.model.discriminator(z)) and values["factor_tc"].shape == (16,)
    assert "val/factor_tc" in vae.validation_metrics
    vae.model.discriminator = None
    assert "factor_tc" not in evaluate() and "val/factor_tc" not in vae.validation_metrics


def test_a_run_reports_the_held_out_total_correlation_and_can_select_its_checkpoint_on_it(make_cfg):
    overrides = ("discriminator=mlp", "model.discriminator.hidden=[16]", "objective.factor_weight=5")
    cfg = make_cfg(*SMALL_RUN, *overrides, "optimized_metric=val/factor_tc", "trainer.max_epochs=2", "seed=0")
    metrics = train(cfg)
    assert math.isfinite(metrics["val/factor_tc"]) and math.isfinite(metrics["test/factor_tc"])
    checkpoint = torch.load(metrics["checkpoint"], weights_only=True)
    assert any("'monitor': 'val/factor_tc'" in name for name in checkpoint["callbacks"])


def test_the_optimizer_trains_the_discriminator_with_its_own_rate_and_betas():
    vae = build_model(objective_settings={"factor_weight": 1.0}, discriminator=DISCRIMINATOR)
    optimizer = vae.configure_optimizers()
    model_group, discriminator_group = optimizer.param_groups
    assert (model_group["lr"], model_group["betas"]) == (1e-3, (0.9, 0.999))
    assert (discriminator_group["lr"], discriminator_group["betas"]) == (1e-4, (0.5, 0.9))
    assert discriminator_group["params"] == list(vae.model.discriminator.parameters())


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"objective_settings": {"factor_weight": 5.0}},
            (
                r"^objective\.factor_weight=5\.0 weighs the total correlation a discriminator estimates, and this "
                r"model has none -- add discriminator=mlp$"
            ),
        ),
        (
            {"objective": "iwae", "discriminator": DISCRIMINATOR},
            (
                r"^discriminator=mlp is trained by objective=elbo, and objective=iwae would leave it untrained: use "
                r"objective=elbo \(objective\.factor_weight weighs its total correlation\), or discriminator=none$"
            ),
        ),
        (
            {
                "estimator": "score_function",
                "objective_settings": {"factor_weight": 5.0},
                "discriminator": DISCRIMINATOR,
            },
            r"needs a reparameterized sample",
        ),
    ],
)
def test_what_cannot_work_is_refused_in_one_line(settings, message):
    assert "\n" not in (line := refusal(**settings))
    assert re.search(message, line), line


def test_settings_out_of_range_are_refused_in_one_line():
    with pytest.raises(
        ConfigError, match=r"^objective\.factor_weight=-1\.0 must be >= 0 \(the discriminator's"
    ):
        ELBO(factor_weight=-1.0)
    with pytest.raises(
        ConfigError, match=r"^objective\.factor_weight=5\.0 and objective\.gradient=dreg do not combine"
    ):
        ELBO(factor_weight=5.0, gradient="dreg")
    with pytest.raises(
        ConfigError, match=r"^model\.discriminator\.lr=0\.0 must be > 0 and betas=\[0\.5, 1\.0\]"
    ):
        FactorDiscriminator(4, lr=0.0, betas=(0.5, 1.0))
