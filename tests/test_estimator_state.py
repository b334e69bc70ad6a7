"""The estimators' own state (NVIL's baseline network and running statistics, REBAR's temperature and scale,
RELAX's network, the score function's moving average) belongs to the estimator: trained by the model's
optimizer in groups the estimator declares, saved in checkpoints and resumed exactly; every estimator trains
under bf16 autocast with the non-finite guard on; the gradient-variance measurement changes nothing."""

from __future__ import annotations

import csv
import io
import math

import pytest
import torch
from hydra.utils import instantiate

from tests.conftest import FAST, build_model
from tests.test_training import SHORT
from vae_zoo.cli import train
from vae_zoo.config_groups import options
from vae_zoo.pairing import valid_estimators

DISCRETE = [name for name in options("estimator") if name not in ("pathwise", "implicit")]


def objective_for(estimator: str) -> tuple[str, dict]:
    return ("iwae", {"k": 2}) if estimator == "vimco" else ("elbo", {})


@pytest.mark.parametrize("name", DISCRETE)
def test_an_estimators_state_round_trips_through_a_checkpoint_with_its_optimizer_group(name):
    torch.manual_seed(0)
    objective, settings = objective_for(name)
    model = build_model("bernoulli", name, objective, latent_settings={"dim": 8}, objective_settings=settings)
    optimizer = model.configure_optimizers()
    assert len(optimizer.param_groups) == 1 + len(model.model.estimator.param_groups())
    initial = {k: v.clone() for k, v in model.model.estimator.state_dict().items()}
    x = torch.rand(16, 1, 28, 28).bernoulli()
    for _ in range(3):
        loss = model.training_loss(x).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    state = model.model.estimator.state_dict()
    if model.model.estimator.param_groups():  # its own parameters trained on its own objective
        assert any(not torch.equal(initial[k], v) for k, v in state.items())
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    restored = build_model(
        "bernoulli", name, objective, latent_settings={"dim": 8}, objective_settings=settings
    )
    restored.load_state_dict(saved["model"])
    restored_optimizer = restored.configure_optimizers()
    restored_optimizer.load_state_dict(saved["optimizer"])
    assert all(torch.equal(v, restored.model.estimator.state_dict()[k]) for k, v in state.items())
    assert [len(g["params"]) for g in restored_optimizer.param_groups] == [
        len(g["params"]) for g in optimizer.param_groups
    ]


def _metrics_without_paths(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k.startswith(("val/", "test/"))}


@pytest.mark.parametrize("name", ["nvil", "relax"])
def test_a_run_with_learned_estimator_parameters_resumes_to_the_uninterrupted_numbers(
    name, make_cfg, tmp_path
):
    run = ("latent=bernoulli", "model.latent.dim=16", f"estimator={name}", "trainer.deterministic=true")
    steps = ("trainer.limit_train_batches=4", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1")
    common = (*run, *steps, *FAST, "logger=[]", "seed=3")
    whole = train(make_cfg(*common, "trainer.max_epochs=2", output_dir=tmp_path / "whole"))
    train(make_cfg(*common, "trainer.max_epochs=1", output_dir=tmp_path / "first"))
    checkpoint = tmp_path / "first" / "checkpoints" / "last.ckpt"
    resumed = train(
        make_cfg(*common, "trainer.max_epochs=2", f"ckpt_path={checkpoint}", output_dir=tmp_path / "second")
    )
    assert resumed["global_step"] == whole["global_step"] == 8
    assert _metrics_without_paths(resumed) == _metrics_without_paths(whole)


@pytest.mark.parametrize("name", DISCRETE)
def test_every_discrete_estimator_trains_under_bf16_autocast_with_the_guard(name, make_cfg, tmp_path):
    objective, settings = objective_for(name)
    latent = "bernoulli" if name in valid_estimators_of("bernoulli") else "categorical"
    metrics = train(
        make_cfg(
            f"latent={latent}",
            f"estimator={name}",
            f"objective={objective}",
            *(f"objective.{k}={v}" for k, v in settings.items()),
            "trainer.precision=bf16-mixed",
            "model.nonfinite=stop",
            *SHORT,
            *FAST,
            "logger=[]",
            "callbacks=none",
        )
    )
    assert metrics["global_step"] == 5
    assert all(math.isfinite(v) for k, v in metrics.items() if k.startswith(("val/", "test/")))


def valid_estimators_of(latent: str) -> list[str]:
    family = instantiate(options("latent")[latent], in_features=4)
    return [*valid_estimators(family, instantiate(options("objective")["elbo"])), "vimco"]


def test_measuring_the_gradient_variance_changes_nothing_in_training(make_cfg, tmp_path):
    run = (
        "latent=bernoulli",
        "model.latent.dim=16",
        "estimator=disarm",
        *SHORT,
        *FAST,
        "logger=csv",
        "callbacks=none",
    )
    plain = train(make_cfg(*run, output_dir=tmp_path / "plain"))
    measured_cfg = make_cfg(
        *run,
        "+callbacks@callbacks.gradient_variance=gradient_variance",
        "callbacks.gradient_variance.every_n_steps=2",
        "callbacks.gradient_variance.draws=4",
        "callbacks.gradient_variance.images=20",
        output_dir=tmp_path / "measured",
    )
    measured = train(measured_cfg)
    assert _metrics_without_paths(measured) == _metrics_without_paths(plain)
    with open(tmp_path / "measured" / "csv" / "metrics.csv") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("train/grad_log10_variance")]
    assert [int(r["step"]) for r in rows] == [0, 2, 4]  # at steps 0, 2 and 4 of 5
    assert all(math.isfinite(float(r["train/grad_log10_variance"])) for r in rows)
