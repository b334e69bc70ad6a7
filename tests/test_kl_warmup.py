"""KLWarmup: beta's schedule, what it changes in the loss, and what it must not change."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import FAST
from vae_zoo.callbacks import KLWarmup
from vae_zoo.cli import train
from vae_zoo.errors import ConfigError


def test_beta_rises_linearly_from_zero_to_one():
    warmup = KLWarmup(steps=1000)
    assert [warmup.value(s) for s in (0, 250, 999, 1000, 10**6)] == [0.0, 0.25, 0.999, 1.0, 1.0]
    with pytest.raises(ConfigError, match="steps=0 must be >= 1"):
        KLWarmup(steps=0)


def test_a_cyclical_warm_up_rises_over_steps_and_holds_one_for_the_rest_of_each_period():
    """Fu et al. (2019), M cycles of T / M steps, rising over the first R of each: steps = R * period."""
    warmup = KLWarmup(steps=4, period=10)
    assert [warmup.value(s) for s in range(23)] == [0, 0.25, 0.5, 0.75, *[1.0] * 6] * 2 + [0, 0.25, 0.5]
    assert KLWarmup(steps=4, period=4).value(7) == 0.75  # R = 1: a saw-tooth, never held at 1
    with pytest.raises(
        ConfigError, match=r"period=3 must be >= callbacks.kl_warmup.steps=4: each cycle rises"
    ):
        KLWarmup(steps=4, period=3)


def test_beta_scales_the_kl_in_the_training_loss_but_not_the_reported_elbo(make_cfg, data_dir):
    import pytorch_lightning as pl

    from vae_zoo.cli import build_datamodule_and_model

    datamodule, model = build_datamodule_and_model(make_cfg(*FAST))
    datamodule.setup()
    x = next(iter(datamodule.train_dataloader()))
    model.trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_checkpointing=False, log_every_n_steps=50
    )
    for beta in (0.0, 0.5, 1.0):
        model.objective.beta = beta
        torch.manual_seed(0)
        loss = model.training_step(x, 0)
        torch.manual_seed(0)
        terms = model.model.negative_elbo_terms(x, model.model.estimator.sample)
        torch.testing.assert_close(loss, terms.recon.mean() + beta * terms.kl.mean())
        torch.testing.assert_close(model.step_output.terms["elbo"], (terms.recon + terms.kl).mean())


def test_a_warmed_up_run_logs_beta_and_reports_the_true_negative_elbo(make_cfg, tmp_path):
    import csv

    metrics = train(
        make_cfg(
            "model=gamma_vae",
            "+callbacks@callbacks.kl_warmup=kl_warmup",
            "callbacks.kl_warmup.steps=4",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=6",
            "trainer.limit_val_batches=1",
            "trainer.limit_test_batches=1",
            "trainer.log_every_n_steps=1",
            "logger=csv",
            *FAST,
        )
    )
    with open(tmp_path / "run" / "csv" / "metrics.csv") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("train/kl_weight")]
    assert {int(r["step"]): float(r["train/kl_weight"]) for r in rows} == {
        0: 0.0,
        1: 0.25,
        2: 0.5,
        3: 0.75,
        4: 1.0,
        5: 1.0,
    }
    for row in (r for r in rows if r.get("train/loss")):
        recon, kl, beta = float(row["train/recon"]), float(row["train/kl"]), float(row["train/kl_weight"])
        assert float(row["train/elbo"]) == pytest.approx(recon + kl, rel=1e-5)  # the true negative ELBO
        assert float(row["train/loss"]) == pytest.approx(recon + beta * kl, rel=1e-5)  # what is minimised
    assert metrics["test/elbo"] == pytest.approx(metrics["test/recon"] + metrics["test/kl"], rel=1e-5)


def test_warm_up_refuses_an_objective_without_a_kl_weight(make_cfg):
    cfg = make_cfg("objective=iwae", "+callbacks@callbacks.kl_warmup=kl_warmup", "debug=fdr", *FAST)
    with pytest.raises(ConfigError, match="callbacks.kl_warmup needs an objective with a KL weight"):
        train(cfg)
