"""Training end to end on real MNIST: fast_dev_run, resume, eval.py from a checkpoint, TensorBoard output."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from tests.conftest import FAST, ROOT
from vae_zoo.cli import train

SHORT = (
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=5",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.log_every_n_steps=1",
    "data.eval_batch_size=100",
)


class RecordStartStep(pl.Callback):
    """Writes the global step at which fitting starts to ``path`` (to see where a resume begins)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_start(self, trainer, pl_module) -> None:
        Path(self.path).write_text(str(trainer.global_step))


VARIANTS = {
    "mlp": ("encoder=mlp", "decoder=mlp"),
    "conv": ("encoder=conv", "decoder=conv"),
    "binarized_mnist": ("data=binarized_mnist",),
    "fashion_grey": ("data=fashion_mnist", "data.binarize=none"),
    "mc_kl_plateau": ("model.kl=mc", "scheduler=plateau"),
    "cosine_csv": ("scheduler=cosine", "logger=csv"),
    "gumbel_softmax": ("model=gumbel_vae", "estimator=gumbel_softmax"),
    "straight_through": ("model=gumbel_vae", "estimator=straight_through"),
    "gumbel_learned_prior_conv": (
        "model=gumbel_vae",
        "model.latent.prior=learned",
        "encoder=conv",
        "decoder=conv",
    ),
    "gamma_implicit_warmup": ("model=gamma_vae", "+callbacks@callbacks.kl_warmup=kl_warmup"),
    "gamma_score_function": ("model=gamma_vae", "estimator=score_function"),
    "gamma_mc_kl_no_baseline": (
        "model=gamma_vae",
        "estimator=score_function",
        "model.estimator.baseline=none",
        "model.kl=mc",
    ),
    "gaussian_implicit": ("estimator=implicit",),
    "gaussian_score_function": ("estimator=score_function",),
    "gumbel_score_function": ("model=gumbel_vae", "estimator=score_function"),
}
DEFAULT_ESTIMATOR = {"gaussian_vae": "pathwise", "gumbel_vae": "gumbel_softmax", "gamma_vae": "implicit"}


def _choice(overrides: tuple[str, ...], group: str, default: str) -> str:
    return next((o.split("=")[1] for o in overrides if o.startswith(f"{group}=")), default)


@pytest.mark.parametrize("variant", VARIANTS)
def test_fast_dev_run_trains_every_model_and_component(variant, make_cfg, tmp_path):
    overrides = VARIANTS[variant]
    metrics = train(make_cfg("debug=fdr", *overrides, *FAST))
    for name in ("val/elbo", "test/elbo", "test/nll_iw"):
        assert math.isfinite(metrics[name]) and 100 < metrics[name] < 1000, (name, metrics[name])
    assert metrics["test/nll_iw"] < metrics["test/elbo"] + 5
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written == metrics
    model = _choice(overrides, "model", "gaussian_vae")
    expected = (
        model,
        _choice(overrides, "estimator", DEFAULT_ESTIMATOR[model]),
        _choice(overrides, "data", "mnist"),
        0,
    )
    assert (written["model"], written["estimator"], written["data"], written["seed"]) == expected


def test_resuming_from_a_checkpoint_continues_at_the_saved_step(make_cfg, tmp_path):
    first = train(make_cfg(*SHORT, *FAST, output_dir=tmp_path / "first"))
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    assert first["global_step"] == 5 and torch.load(last, weights_only=True)["global_step"] == 5

    start_file = tmp_path / "start_step.txt"
    resumed = train(
        make_cfg(
            *SHORT,
            *FAST,
            "trainer.max_epochs=2",
            f"ckpt_path={last}",
            "+callbacks.start_step._target_=tests.test_training.RecordStartStep",
            f"+callbacks.start_step.path={start_file}",
            output_dir=tmp_path / "second",
        )
    )
    assert start_file.read_text() == "5"
    assert (resumed["global_step"], resumed["epochs"]) == (10, 2)


def _run(script: str, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(ROOT / script), *overrides],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, data_dir):
    """One short real run of ``python train.py`` with the default callbacks and TensorBoard logger."""
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    result = _run("train.py", f"paths.data_dir={data_dir}", f"hydra.run.dir={run_dir}", *SHORT, *FAST)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def test_train_cli_writes_config_checkpoints_and_metrics(cli_run):
    assert (cli_run / ".hydra" / "config.yaml").is_file() and (cli_run / "config_tree.log").is_file()
    assert {p.name for p in (cli_run / "checkpoints").iterdir()} == {"epoch_000.ckpt", "last.ckpt"}
    metrics = json.loads((cli_run / "metrics.json").read_text())
    assert {"val/elbo", "test/elbo", "test/nll_iw", "model", "estimator", "data", "seed"} <= set(metrics)


def test_eval_cli_reproduces_the_test_metrics_from_the_checkpoint(cli_run, data_dir, tmp_path):
    trained = json.loads((cli_run / "metrics.json").read_text())
    eval_dir = tmp_path / "eval"
    result = _run(
        "eval.py",
        f"ckpt_path={trained['checkpoint']}",
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={eval_dir}",
        "trainer.limit_test_batches=2",
        *FAST,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    evaluated = json.loads((eval_dir / "metrics.json").read_text())
    for name in ("test/elbo", "test/recon", "test/kl", "test/nll_iw"):
        assert evaluated[name] == trained[name], name  # same weights, data and seed: the same numbers
    assert (evaluated["model"], evaluated["data"]) == ("gaussian_vae", "mnist")


def test_tensorboard_gets_scalars_image_grids_and_hyperparameters(cli_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(cli_run / "tensorboard")).Reload()
    tags = events.Tags()
    assert {"train/loss", "train/recon", "train/kl", "train/loss_epoch", "val/elbo"} <= set(tags["scalars"])
    assert len(events.Scalars("train/loss")) == 5  # log_every_n_steps=1: one point per step
    assert {"images/reconstructions", "images/samples"} <= set(tags["images"])
    hparams = (cli_run / "tensorboard" / "hparams.yaml").read_text()
    assert "model" in hparams and "data" in hparams and "seed" in hparams


def test_a_wrong_pairing_ends_with_one_line_listing_the_valid_estimators(tmp_path):
    result = _run(
        "train.py", "model=gamma_vae", "estimator=gumbel_softmax", f"hydra.run.dir={tmp_path / 'run'}"
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "error: estimator=gumbel_softmax does not pair with GammaVAE; "
        "choose one of: estimator=implicit, estimator=score_function"
    )


def test_missing_data_offline_ends_with_one_clear_line(tmp_path):
    result = _run(
        "train.py", f"paths.data_dir={tmp_path}", "data.download=false", f"hydra.run.dir={tmp_path / 'run'}"
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: dataset files not found in {tmp_path}"), result.stderr[-2000:]
    assert "Traceback" not in result.stderr
