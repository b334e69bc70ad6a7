"""The capacity-controlled beta-VAE (Burgess et al. 2018): ``objective.capacity_weight`` trains the KL towards a
capacity ``C``, ``callbacks.capacity`` raises ``C`` from 0. The loss against its formula on the same draws, the
schedule, a trained KL that settles at its capacity, and the one-line refusals."""

from __future__ import annotations

import csv

import pytest
import torch

from tests.conftest import TINY, build_model, component, mnist_like
from vae_zoo.callbacks import CapacityIncrease
from vae_zoo.cli import train
from vae_zoo.errors import ConfigError, cause_of_type


@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_the_loss_is_the_reconstruction_plus_gamma_times_the_kls_distance_from_the_capacity(beta):
    """``mean recon + beta * gamma * |mean KL - C|`` on the same draws, its value and its gradient; the terms stay
    the negative ELBO's."""
    torch.manual_seed(0)
    settings = {"capacity_weight": 20.0, "capacity": 3.0, "beta": beta}
    vae, x = build_model(objective_settings=settings), mnist_like(16, seed=0)
    torch.manual_seed(1)
    loss, terms = vae.objective(vae.model, x)
    torch.manual_seed(1)
    q = vae.model.posterior(x)
    recon, kl = vae.model.nll(x, vae.model.training_sample(q).value), vae.model.kl(q)
    reference = recon.mean() + beta * 20.0 * (kl.mean() - 3.0).abs()
    torch.testing.assert_close(loss, reference)
    params = list(vae.model.parameters())
    for ours, theirs in zip(torch.autograd.grad(loss, params), torch.autograd.grad(reference, params)):
        torch.testing.assert_close(ours, theirs)
    assert terms["elbo"] == pytest.approx((recon.mean() + kl.mean()).item(), rel=1e-6)


def test_the_capacity_rises_linearly_to_its_end():
    increase = CapacityIncrease(capacity=25.0, steps=1000)
    assert [increase.value(s) for s in (0, 200, 1000, 10**6)] == [0.0, 5.0, 25.0, 25.0]
    with pytest.raises(ConfigError, match=r"^callbacks.capacity.capacity=-1 must be >= 0 \(nats\)"):
        CapacityIncrease(capacity=-1)


def test_the_trained_kl_settles_at_its_capacity(make_cfg):
    """With gamma = 100 the KL follows the capacity as it rises to 3 nats over 100 steps and stays there: the mean
    of the batches' KL logged over the last 100 of 300 steps within 0.25 nats of it (a batch of 32 images' own
    spreads by about 0.5), where the ELBO takes the same model's KL to 8.9 nats (asserted above 6)."""
    common = (*TINY, "trainer.max_epochs=1", "trainer.limit_train_batches=300", "logger=csv")
    capacity = ("objective.capacity_weight=100", "+callbacks@callbacks.capacity=capacity")
    capacity += (
        "callbacks.capacity.capacity=3",
        "callbacks.capacity.steps=100",
        "trainer.log_every_n_steps=10",
    )
    cfg = make_cfg(*common, *capacity)
    train(cfg)
    with open(f"{cfg.paths.output_dir}/csv/metrics.csv") as rows:
        logged = [row for row in csv.DictReader(rows) if row.get("train/kl")]
    late = [float(row["train/kl"]) for row in logged if int(row["step"]) >= 200]
    assert len(late) >= 10 and abs(sum(late) / len(late) - 3) < 0.25, late
    assert float(logged[-1]["train/capacity"]) == 3.0
    elbo = train(make_cfg(*common, "trainer.log_every_n_steps=10"))
    assert elbo["test/kl"] > 6


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"objective_settings": {"capacity_weight": 10, "kl": "mc"}},
            (
                "objective.capacity_weight=10.0 trains the closed-form KL towards a capacity, and objective.kl=mc "
                "trains it otherwise -- set objective.capacity_weight=0, or drop that setting"
            ),
        ),
        (
            {"objective_settings": {"capacity_weight": 10, "free_bits": 0.5}},
            (
                "objective.capacity_weight=10.0 trains the closed-form KL towards a capacity, and "
                "objective.free_bits=0.5 trains it otherwise -- set objective.capacity_weight=0, or drop that setting"
            ),
        ),
        (
            {"objective_settings": {"capacity_weight": 10}, "flow": component("flow", "planar")},
            (
                "objective.capacity_weight=10.0 trains the closed-form KL, which this model's prior, flow or latent "
                "layers lack -- set objective.capacity_weight=0"
            ),
        ),
        (
            {"objective_settings": {"capacity_weight": -1}},
            (
                "objective.capacity_weight=-1 and objective.capacity=0.0 must be >= 0 (the weight of |KL - capacity| "
                "in the loss, 0: off; the target KL in nats)"
            ),
        ),
    ],
)
def test_what_it_cannot_train_is_refused_in_one_line(settings, message):
    with pytest.raises(Exception) as refused:  # Hydra's instantiate wraps the objective's own refusal
        build_model(**settings)
    assert str(cause_of_type(refused.value, ConfigError)) == message


def test_the_increase_refuses_an_objective_without_a_capacity(make_cfg):
    cfg = make_cfg(*TINY, "+callbacks@callbacks.capacity=capacity", "trainer.max_epochs=1")
    with pytest.raises(
        ConfigError, match=r"^callbacks.capacity raises the KL capacity that objective.capacity_"
    ):
        train(cfg)
