"""Training end to end on real MNIST: fast_dev_run, resume, eval.py from a checkpoint, TensorBoard output."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from tests.conftest import FAST, build_model, run_script
from vae_zoo.cli import train
from vae_zoo.errors import ConfigError

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


# Features of the whole run beyond the component pairings (those: tests/test_conformance.py).
VARIANTS = {
    "mlp": ("encoder=mlp", "decoder=mlp"),
    "conv": ("encoder=conv", "decoder=conv"),
    "binarized_mnist": ("data=binarized_mnist",),
    "fashion_grey_levels": (
        "data=fashion_mnist",
        "data.binarize=none",
        "likelihood=bernoulli",
        "model.likelihood.allow_grey_levels=true",
    ),
    "mc_kl_plateau": ("objective.kl=mc", "scheduler=plateau"),
    "cosine_csv": ("scheduler=cosine", "logger=csv"),
    "gumbel_learned_prior_conv": (
        "model=gumbel_vae",
        "model.latent.prior=learned",
        "encoder=conv",
        "decoder=conv",
    ),
    "gamma_warmup": ("model=gamma_vae", "+callbacks@callbacks.kl_warmup=kl_warmup"),
    "iwae_monitored": ("objective=iwae", "objective.k=3", "optimized_metric=val/iwae_3"),
    "iwae_dreg": ("objective=iwae", "objective.k=3", "objective.gradient=dreg"),
    "gamma_sticking_the_landing": ("model=gamma_vae", "objective.gradient=dreg"),
    "free_bits": ("objective.free_bits=0.25",),
    "latent_without_preset": ("latent=gamma", "estimator=implicit"),
}
PRESETS = {
    "gaussian_vae": ("normal", "pathwise"),
    "gumbel_vae": ("categorical", "gumbel_softmax"),
    "gamma_vae": ("gamma", "implicit"),
}
BERNOULLI_AT_ZERO_LOGITS = 784 * math.log(2)  # -log p(x|z) of any 28x28 image when every logit is 0


def _choice(overrides: tuple[str, ...], group: str, default: str) -> str:
    return next((o.split("=")[1] for o in overrides if o.startswith(f"{group}=")), default)


@pytest.mark.parametrize("variant", VARIANTS)
def test_fast_dev_run_trains_every_model_and_component(variant, make_cfg, tmp_path):
    overrides = VARIANTS[variant]
    metrics = train(make_cfg("debug=fdr", *overrides, *FAST))
    # nats per image, summed over 784 pixels: after one step the decoder's logits are still near 0, so
    # -log p(x|z) is near 784 ln 2 = 543 (in bits it would be near 784; as a per-pixel mean, near 0.69)
    assert abs(metrics["test/recon"] - BERNOULLI_AT_ZERO_LOGITS) < 100, metrics["test/recon"]
    assert metrics["test/elbo"] == pytest.approx(metrics["test/recon"] + metrics["test/kl"], rel=1e-5)
    assert metrics["test/kl"] >= 0 and metrics["test/nll_iw"] < metrics["test/elbo"] + 5
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written == metrics
    model = _choice(overrides, "model", "gaussian_vae")
    expected = {
        "model": model,
        "latent": _choice(overrides, "latent", PRESETS[model][0]),
        "estimator": _choice(overrides, "estimator", PRESETS[model][1]),
        "objective": _choice(overrides, "objective", "elbo"),
        "likelihood": "bernoulli",
        "data": _choice(overrides, "data", "mnist"),
        "seed": 0,
    }
    assert {key: written[key] for key in expected} == expected


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


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, data_dir):
    """One short real run of ``python train.py`` with the default callbacks and TensorBoard logger."""
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    result = run_script("train.py", f"paths.data_dir={data_dir}", f"hydra.run.dir={run_dir}", *SHORT, *FAST)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir.parent / "console.txt").write_text(result.stdout + result.stderr)
    return run_dir


def test_train_cli_writes_config_checkpoints_and_metrics(cli_run):
    assert (cli_run / ".hydra" / "config.yaml").is_file() and (cli_run / "config_tree.log").is_file()
    assert {p.name for p in (cli_run / "checkpoints").iterdir()} == {"epoch_000.ckpt", "last.ckpt"}
    metrics = json.loads((cli_run / "metrics.json").read_text())
    assert {
        "val/elbo",
        "test/elbo",
        "test/nll_iw",
        "model",
        "latent",
        "estimator",
        "objective",
        "data",
        "seed",
    } <= set(metrics)


def test_eval_cli_reproduces_the_test_metrics_from_the_checkpoint(cli_run, data_dir, tmp_path):
    trained = json.loads((cli_run / "metrics.json").read_text())
    eval_dir = tmp_path / "eval"
    result = run_script(
        "eval.py",
        f"ckpt_path={trained['checkpoint']}",
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={eval_dir}",
        "trainer.limit_test_batches=2",
        *FAST,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "callbacks used to create the checkpoint" not in result.stderr  # eval.py only tests
    evaluated = json.loads((eval_dir / "metrics.json").read_text())
    for name in ("test/elbo", "test/recon", "test/kl", "test/nll_iw"):
        assert evaluated[name] == trained[name], name  # same weights, data and seed: the same numbers
    assert (evaluated["model"], evaluated["data"]) == ("gaussian_vae", "mnist")


def test_the_console_says_what_trains_where_and_lightning_info_goes_to_the_log_file(cli_run):
    console = (cli_run.parent / "console.txt").read_text()
    start = f"train: gaussian_vae (latent=normal, estimator=pathwise, objective=elbo, likelihood=bernoulli) on mnist | cpu, 32-true | {cli_run}"
    assert start in console.splitlines()
    log = (cli_run / "train.log").read_text()
    for line in ("Tip: For seamless cloud", "GPU available: False", "Restoring states from the checkpoint"):
        assert line in log and line not in console, line
    assert "v_num" not in console


def test_tensorboard_gets_scalars_image_grids_and_hyperparameters(cli_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (run,) = (cli_run / "tensorboard").iterdir()  # one TensorBoard run, named by what trained
    assert (
        run.name
        == "gaussian_vae,normal,pathwise,elbo,bernoulli,mnist,max_epochs=1,log_every_n_steps=1,eval_batch_size=100"
    )
    events = EventAccumulator(str(run)).Reload()
    tags = events.Tags()
    assert {
        "train/loss",
        "train/elbo",
        "train/recon",
        "train/kl",
        "train/loss_epoch",
        "train/elbo_epoch",
        "val/elbo",
    } <= set(tags["scalars"])
    assert len(events.Scalars("train/loss")) == 5  # log_every_n_steps=1: one point per step
    assert {"images/reconstructions", "images/samples"} <= set(tags["images"])
    hparams = (run / "hparams.yaml").read_text()
    assert "model" in hparams and "data" in hparams and "seed" in hparams


def test_a_wrong_pairing_ends_with_one_line_listing_the_valid_estimators(tmp_path):
    result = run_script(
        "train.py", "model=gamma_vae", "estimator=gumbel_softmax", f"hydra.run.dir={tmp_path / 'run'}"
    )
    assert result.returncode == 2 and result.stdout == ""  # validated before the config tree is printed
    assert result.stderr.strip().splitlines() == [
        (
            "error: estimator=gumbel_softmax does not pair with latent=gamma: it needs Bernoulli or categorical logits, "
            "which Gamma posteriors lack; choose one of: estimator=implicit, estimator=nvil, estimator=pathwise, estimator=reinforce_loo, estimator=score_function"
        )
    ]


def test_a_refusal_names_the_family_of_a_posterior_that_is_not_one_of_torchs():
    with pytest.raises(ConfigError, match=r"\(rsample\), which TruncatedNormal posteriors lack"):
        build_model(latent="truncated_normal", estimator="pathwise")


def test_missing_data_offline_ends_with_one_clear_line(tmp_path):
    result = run_script(
        "train.py", f"paths.data_dir={tmp_path}", "data.download=false", f"hydra.run.dir={tmp_path / 'run'}"
    )
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: dataset files not found in {tmp_path}"), result.stderr[-2000:]
