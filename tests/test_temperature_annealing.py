"""TemperatureAnnealing: the schedules' values, start-up validation, and an exact schedule after resume."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from tests.conftest import FAST
from vae_zoo.callbacks import TemperatureAnnealing
from vae_zoo.cli import train
from vae_zoo.errors import ConfigError


def test_exponential_is_the_papers_schedule_re_evaluated_every_n_steps():
    anneal = TemperatureAnnealing("exponential", tau0=1.0, tau_min=0.5, rate=3e-5, every_n_steps=1000)
    assert anneal.temperature(0) == anneal.temperature(999) == 1.0
    assert anneal.temperature(1000) == anneal.temperature(1999) == pytest.approx(math.exp(-0.03))
    assert anneal.temperature(20_000) == pytest.approx(math.exp(-0.6))
    assert anneal.temperature(23_999) == pytest.approx(math.exp(-0.69))  # 0.5016, not yet clamped
    assert anneal.temperature(24_000) == 0.5 == anneal.temperature(10**7)  # exp(-0.72) < 0.5: clamped


@pytest.mark.parametrize(
    ("schedule", "step", "expected"),
    [
        ("linear", 0, 2.0),
        ("linear", 5_400, 1.25),
        ("linear", 5_500, 2.0 - 1.5 * 0.55),
        ("linear", 10_000, 0.5),
        ("linear", 50_000, 0.5),
        ("cosine", 0, 2.0),
        ("cosine", 5_000, 1.25),
        ("cosine", 2_500, 0.5 + 1.5 * (1 + math.cos(math.pi / 4)) / 2),
        ("cosine", 10_000, 0.5),
        ("constant", 0, 2.0),
        ("constant", 10**6, 2.0),
    ],
)
def test_linear_cosine_and_constant_schedules(schedule, step, expected):
    anneal = TemperatureAnnealing(schedule, tau0=2.0, tau_min=0.5, every_n_steps=500, anneal_steps=10_000)
    assert anneal.temperature(step) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tau_min": 0.0}, "tau_min=0.0 must be > 0"),
        ({"tau_min": -1.0}, "tau_min=-1.0 must be > 0"),
        ({"tau0": 0.4, "tau_min": 0.5}, "tau0=0.4 must be >= callbacks.temperature.tau_min=0.5"),
        ({"every_n_steps": 0}, "every_n_steps=0 must be >= 1"),
        ({"rate": -1e-3}, "rate=-0.001 must be >= 0"),
        ({"schedule": "step"}, "schedule='step' is not one of"),
        ({"anneal_steps": 0}, "anneal_steps=0 must be >= 1"),
    ],
)
def test_impossible_settings_fail_at_start_up(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        TemperatureAnnealing(**kwargs)


SHORT = (
    "model=gumbel_vae",
    "trainer.limit_train_batches=5",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.log_every_n_steps=1",
    "logger=csv",
    "callbacks.temperature.rate=0.1",
    "callbacks.temperature.every_n_steps=2",
    *FAST,
)


def _temperatures(run_dir) -> dict[int, float]:
    with open(run_dir / "csv" / "metrics.csv") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("train/temperature")]
    return {int(row["step"]): float(row["train/temperature"]) for row in rows}


def test_a_resumed_run_has_the_temperature_of_an_uninterrupted_run_at_every_step(make_cfg, tmp_path):
    train(make_cfg(*SHORT, "trainer.max_epochs=2", output_dir=tmp_path / "whole"))
    train(make_cfg(*SHORT, "trainer.max_epochs=1", output_dir=tmp_path / "first"))
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 5
    train(make_cfg(*SHORT, "trainer.max_epochs=2", f"ckpt_path={last}", output_dir=tmp_path / "resumed"))

    whole, resumed = _temperatures(tmp_path / "whole"), _temperatures(tmp_path / "resumed")
    expected = {step: max(0.5, math.exp(-0.1 * (step // 2) * 2)) for step in range(10)}
    assert whole == pytest.approx(expected)
    assert sorted(resumed) == [5, 6, 7, 8, 9]  # the resumed run starts at the saved step...
    assert resumed == pytest.approx({step: whole[step] for step in resumed})  # ...with the same temperatures


def test_annealing_is_a_no_op_for_an_estimator_without_a_temperature(make_cfg, caplog):
    metrics = train(make_cfg("debug=fdr", "model=gumbel_vae", "estimator=score_function", *FAST))
    assert metrics["estimator"] == "score_function" and math.isfinite(metrics["test/elbo"])
    assert "estimator=score_function has no temperature to anneal" in caplog.text
