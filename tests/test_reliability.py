"""Preemption and exact resume, determinism, the non-finite guard, and one-line errors for bad input."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import signal
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from tests.conftest import FAST, run_script
from vae_zoo.cli import train
from vae_zoo.errors import NonFiniteLossError

RUN = (
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=20",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.deterministic=true",
    "seed=3",
    "data.eval_batch_size=100",
    "eval.iw_samples=20",
    "eval.iw_chunk=10",
    "trainer.accelerator=cpu",
)
METRICS = (
    "val/elbo",
    "val/recon",
    "val/kl",
    "test/elbo",
    "test/recon",
    "test/kl",
    "test/nll_iw",
    "global_step",
)


class SignalAtStep(pl.Callback):
    """Sends this process ``signal_name`` once the training step ``step`` has finished (as a scheduler would)."""

    pack_wide = True  # a pack runs it too, once

    def __init__(self, step: int, signal_name: str = "SIGTERM") -> None:
        self.step, self.signum = step, getattr(signal, signal_name)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


def _cli(data_dir, run_dir, *overrides):
    return run_script("train.py", *RUN, f"paths.data_dir={data_dir}", f"hydra.run.dir={run_dir}", *overrides)


def _metrics(run_dir: Path) -> dict:
    written = json.loads((run_dir / "metrics.json").read_text())
    return {name: written[name] for name in METRICS}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, data_dir) -> Path:
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    result = _cli(data_dir, run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def test_the_same_seed_twice_gives_identical_metrics(uninterrupted, data_dir, tmp_path):
    result = _cli(data_dir, tmp_path / "again")
    assert result.returncode == 0, result.stderr[-3000:]
    assert _metrics(tmp_path / "again") == _metrics(uninterrupted)


@pytest.mark.parametrize(("signal_name", "code"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_run_killed_mid_epoch_and_resumed_ends_with_the_uninterrupted_metrics(
    signal_name, code, uninterrupted, data_dir, tmp_path
):
    killed = tmp_path / "killed"
    result = _cli(
        data_dir,
        killed,
        "+callbacks.kill._target_=tests.test_reliability.SignalAtStep",
        "+callbacks.kill.step=27",
        f"+callbacks.kill.signal_name={signal_name}",
    )
    checkpoint = killed / "checkpoints" / "last.ckpt"
    assert result.returncode == code, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"stopped by {signal_name} at step 27; saved {checkpoint} -- continue with ckpt_path={checkpoint}"
    )
    assert torch.load(checkpoint, weights_only=True)["global_step"] == 27  # mid-epoch: epoch 1, batch 7 of 20
    assert not (killed / "metrics.json").exists()

    resumed = _cli(data_dir, tmp_path / "resumed", f"ckpt_path={checkpoint}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _metrics(tmp_path / "resumed") == _metrics(uninterrupted)  # to the last digit


def test_an_interrupted_run_continues_in_place_with_ckpt_path_last(data_dir, tmp_path):
    run_dir = tmp_path / "run"
    first = _cli(
        data_dir,
        run_dir,
        "+callbacks.kill._target_=tests.test_reliability.SignalAtStep",
        "+callbacks.kill.step=5",
    )
    assert first.returncode == 143, first.stderr[-3000:]
    again = _cli(data_dir, run_dir, "ckpt_path=last")
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((run_dir / "metrics.json").read_text())["global_step"] == 40


def test_last_ckpt_holds_the_last_epoch_when_the_best_does_not_improve(make_cfg, tmp_path):
    """``mode=max`` on a falling val/elbo: the first epoch stays the best, and ``last.ckpt`` still holds the
    third (Lightning 2.6's ``ModelCheckpoint`` left it at the best, so ``ckpt_path=last`` lost two epochs)."""
    cfg = make_cfg(
        *RUN[1:],
        "trainer.max_epochs=3",
        "callbacks=default",
        "callbacks.image_grids=null",
        "callbacks.model_checkpoint.mode=max",
        "logger=[]",
        output_dir=tmp_path / "run",
    )
    metrics = train(cfg)
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert Path(metrics["checkpoint"]).name == "epoch_000.ckpt" and last["global_step"] == 60
    assert {p.name for p in (tmp_path / "run" / "checkpoints").iterdir()} == {"epoch_000.ckpt", "last.ckpt"}


class PoisonBatch(pl.Callback):
    """Makes training step ``step`` non-finite: its input batch (``where=batch``) or its gradients; or
    (``where=huge``) sets every gradient to 1e38, finite, though their sum overflows float32."""

    def __init__(self, step: int, where: str = "batch") -> None:
        self.step, self.where = step, where

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.where == "batch" and trainer.global_step == self.step:
            batch.fill_(float("nan"))

    def on_after_backward(self, trainer, pl_module) -> None:
        if self.where == "gradient" and trainer.global_step == self.step:
            next(pl_module.parameters()).grad.fill_(float("inf"))
        if self.where == "huge" and trainer.global_step == self.step:
            for parameter in pl_module.parameters():
                parameter.grad.fill_(1e38)


POISON = ("+callbacks.poison._target_=tests.test_reliability.PoisonBatch", "+callbacks.poison.step=23")


# Read every step (the CPU's default), or deferred: a device flag masks the fused update, read every 5 steps.
EVERY = {1: "epoch 1, batch 3", 5: "seen at step 25; the guard reads every 5 steps"}


@pytest.mark.parametrize("every", EVERY)
@pytest.mark.parametrize(("where", "term"), [("batch", "elbo, recon and kl"), ("gradient", "gradient")])
def test_a_non_finite_loss_or_gradient_stops_with_the_step_and_term_and_keeps_the_last_checkpoint(
    where, term, every, make_cfg, tmp_path
):
    cfg = make_cfg(
        *RUN, *FAST, *POISON, f"+callbacks.poison.where={where}", f"model.nonfinite_check_every={every}"
    )
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    with pytest.raises(NonFiniteLossError) as error:
        train(cfg)
    assert str(error.value).startswith(
        f"non-finite {term} at step 23 ({EVERY[every]}); the last good checkpoint is {last}"
    )
    assert "model.nonfinite=skip" in str(error.value)
    assert torch.load(last, weights_only=True)["global_step"] == 20  # the end of epoch 0, not overwritten


@pytest.mark.parametrize("every", EVERY)
def test_finite_gradients_whose_sum_overflows_are_not_taken_for_non_finite(every, make_cfg):
    overrides = (*POISON, "+callbacks.poison.where=huge", f"model.nonfinite_check_every={every}")
    metrics = train(make_cfg(*RUN, *FAST, *overrides))
    assert (
        metrics["global_step"] == 40
    )  # the guard's one-sum probe overflowed at step 23; the exact check passed


@pytest.mark.parametrize("every", EVERY)
@pytest.mark.parametrize("where", ["batch", "gradient"])
def test_skip_mode_skips_the_batch_counts_it_and_trains_on(where, every, make_cfg, tmp_path):
    metrics = train(
        make_cfg(
            *RUN,
            *FAST,
            *POISON,
            f"+callbacks.poison.where={where}",
            "model.nonfinite=skip",
            f"model.nonfinite_check_every={every}",
            "logger=csv",
            "trainer.log_every_n_steps=1",
        )
    )
    assert all(torch.isfinite(torch.tensor(metrics[name])) for name in METRICS)
    with open(tmp_path / "run" / "csv" / "metrics.csv") as handle:
        skipped = [
            float(r["train/skipped_batches"])
            for r in csv.DictReader(handle)
            if r.get("train/skipped_batches")
        ]
    assert skipped and set(skipped) == {1.0}  # one batch skipped; the count is logged from then on


@pytest.mark.parametrize("where", ["batch", "gradient"])
def test_a_deferred_skip_trains_the_same_weights_as_a_skip_read_every_step(where, make_cfg, tmp_path):
    """The device flag makes the fused update of the bad step a no-op (weights, moments, step counts), as
    the per-step guard's dropped gradients do; the epoch means leave the step out alike."""
    runs = {}
    for every in EVERY:
        out = tmp_path / str(every)
        overrides = (*POISON, f"+callbacks.poison.where={where}", "model.nonfinite=skip", "logger=csv")
        metrics = train(
            make_cfg(*RUN, *FAST, *overrides, f"model.nonfinite_check_every={every}", output_dir=out)
        )
        weights = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        with open(out / "csv" / "metrics.csv") as handle:
            losses = [
                float(r["train/loss_epoch"]) for r in csv.DictReader(handle) if r.get("train/loss_epoch")
            ]
        runs[every] = metrics, weights, losses
    (metrics_1, weights_1, losses_1), (metrics_5, weights_5, losses_5) = runs.values()
    assert all(torch.equal(weights_1[name], weights_5[name]) for name in weights_1)
    assert losses_5 == pytest.approx(losses_1, rel=1e-6) and all(map(math.isfinite, losses_5))
    assert metrics_5["val/elbo"] == metrics_1["val/elbo"]


def _fingerprint(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


BAD_INPUTS = {
    "unknown model": (
        ["model=transformer"],
        (
            "error: model=transformer: model has no option 'transformer' -- choose one of: bernoulli_vae, gamma_vae, "
            "gaussian_vae, gumbel_vae, two_layer_vae, vq_vae"
        ),
    ),
    "misspelled estimator": (
        ["estimator=reinforce"],
        "error: estimator=reinforce: estimator has no option 'reinforce' -- did you mean estimator=reinforce_loo?",
    ),
    "misspelled key": (
        ["model.latent.dimm=3"],
        "error: model.latent.dimm: no such key in model.latent -- did you mean model.latent.dim?",
    ),
    "unknown key": (
        ["model.latent.size=3"],
        (
            "error: model.latent.size: no such key in model.latent (its keys: dim) -- check the name; a key the "
            "config lacks is added with a leading +: +model.latent.size=<value>"
        ),
    ),
    "an estimator named as an objective": (
        ["objective=vimco"],
        (
            "error: objective=vimco: objective has no option 'vimco' (vimco is an option of estimator: "
            "estimator=vimco) -- choose one of: elbo, iwae"
        ),
    ),
    "a mapping for a list": (
        ["model.decoder.hidden={{}}"],  # doubled braces: the cases are str.format templates
        "error: Error merging override model.decoder.hidden={{}}; Cannot merge DictConfig with ListConfig",
    ),
    "wrong pairing": (
        ["model=gamma_vae", "estimator=gumbel_softmax"],
        (
            "error: estimator=gumbel_softmax does not pair with latent=gamma: it needs Bernoulli or categorical logits, "
            "which Gamma posteriors lack; choose one of: "
            "estimator=implicit, estimator=nvil, estimator=pathwise, estimator=reinforce_loo, estimator=score_function"
        ),
    ),
    "relaxed samples for IWAE": (
        ["model=gumbel_vae", "objective=iwae"],
        "error: estimator=gumbel_softmax does not pair with objective=iwae (k=5): the objective evaluates",
    ),
    "Bernoulli on grey levels": (
        ["data.binarize=none", "likelihood=bernoulli"],
        (
            "error: likelihood=bernoulli is a density of binary pixels, but the data serves 8bit pixels -- choose "
            "one of likelihood=discretized_logistic (or leave likelihood= unset: the data's own is chosen), or "
            "binarize the data (data.binarize=dynamic); or model.likelihood.allow_grey_levels=true"
        ),
    ),
    "an antithetic estimator on Gamma latents": (
        ["model=gamma_vae", "estimator=disarm"],
        (
            "error: estimator=disarm does not pair with latent=gamma: it needs Bernoulli logits, which Gamma "
            "posteriors lack; choose one of: estimator=implicit, estimator=nvil, estimator=pathwise, "
            "estimator=reinforce_loo, estimator=score_function"
        ),
    ),
    "VIMCO on the ELBO": (
        ["latent=bernoulli", "estimator=vimco"],
        (
            "error: estimator=vimco does not pair with objective=elbo (beta=1.0, kl=analytic): it needs a cost of "
            "at least 2 samples per image (objective=iwae objective.k>=2), and this objective's is of 1"
        ),
    ),
    "VIMCO on a one-sample bound": (
        ["latent=bernoulli", "estimator=vimco", "objective=iwae", "objective.k=1"],
        "error: estimator=vimco does not pair with objective=iwae (k=1): it needs a cost of at least 2 samples",
    ),
    "a capacity increase without its weight": (
        ["+callbacks@callbacks.capacity=capacity"],
        (
            "error: callbacks.capacity raises the KL capacity that objective.capacity_weight trains towards, and "
            "this objective trains none -- set objective.capacity_weight (e.g. 1000), or drop the callback"
        ),
    ),
    "MIWAE with the score function": (
        ["objective=iwae", "objective.groups=4", "estimator=score_function"],
        (
            "error: estimator=score_function does not pair with objective=iwae (k=5, groups=4): its gradient flows "
            "through the training sample, which needs a reparameterized sample (explicit or implicit); choose one "
            "of: estimator=implicit, estimator=pathwise"
        ),
    ),
    "MIWAE with no group": (
        ["objective=iwae", "objective.groups=0"],
        "error: objective.k=5 and objective.groups=0 must be >= 1",
    ),
    "PIWAE with one group": (
        ["objective=iwae", "objective.partitioned=true"],
        (
            "error: objective.partitioned=true trains the encoder on the mean of objective.groups bounds and the "
            "decoder on their pooled samples, and there is one group -- set objective.groups > 1"
        ),
    ),
    "CIWAE's ELBO weight above 1": (
        ["objective=iwae", "objective.elbo_weight=2"],
        "error: objective.elbo_weight=2 must be in [0, 1] (the ELBO's share in each group's bound; 0: the IWAE bound)",
    ),
    "DIP-VAE on Gamma latents": (
        ["model=gamma_vae", "objective.dip_weight=10"],
        (
            "error: objective=elbo (beta=1.0, kl=analytic, dip_weight=10.0, dip_covariance=means) needs a diagonal "
            "Normal (a mean and a variance per latent unit), which latent=gamma's Gamma posteriors lack -- set "
            "objective.dip_weight=0"
        ),
    ),
    "FactorVAE without its discriminator": (
        ["objective.factor_weight=10"],
        (
            "error: objective.factor_weight=10.0 weighs the total correlation a discriminator estimates, and this "
            "model has none -- add discriminator=mlp"
        ),
    ),
    "a discriminator no objective trains": (
        ["discriminator=mlp", "objective=iwae"],
        (
            "error: discriminator=mlp is trained by objective=elbo, and objective=iwae would leave it untrained: use "
            "objective=elbo (objective.factor_weight weighs its total correlation), or discriminator=none"
        ),
    ),
    "a discriminator's learning rate": (
        ["discriminator=mlp", "model.discriminator.lr=0"],
        "error: model.discriminator.lr=0 must be > 0 and betas=[0.5, 0.9] two numbers in [0, 1)",
    ),
    "ReinMax at temperature 0": (
        ["latent=categorical", "estimator=reinmax", "model.estimator.temperature=0"],
        "error: model.estimator.temperature=0 must be > 0 (1 or more, Liu et al.)",
    ),
    "an estimator's own learning rate": (
        ["latent=bernoulli", "estimator=nvil", "model.estimator.lr=-0.1"],
        "error: model.estimator.lr=-0.1 must be > 0 (or null: the model's learning rate)",
    ),
    "a VampPrior on binary latents": (
        ["latent=bernoulli", "estimator=disarm", "prior=vamp"],
        (
            "error: prior=vamp needs a continuous density, which latent=bernoulli's Bernoulli posteriors lack -- "
            "choose another prior= or latent="
        ),
    ),
    "implicit gradients through a flow": (
        ["flow=iaf", "estimator=implicit"],
        "error: estimator=implicit does not pair with latent=normal through flow=iaf: it needs a CDF differentiable",
    ),
    "a closed-form KL the prior lacks": (
        ["prior=mog", "objective.kl=analytic"],
        "error: objective.kl=analytic needs a closed-form KL, which this model's prior, flow or latent layers lack",
    ),
    "unknown compile mode": (
        ["model.compile=fastest"],
        (
            "error: model.compile=fastest is not one of true, false, default, reduce-overhead, max-autotune, "
            "max-autotune-no-cudagraphs"
        ),
    ),
    "unknown compile scope": (
        ["model.compile=true", "model.compile_scope=all"],
        "error: model.compile_scope=all is not one of modules, loss",
    ),
    "optimizer implementation missing on the device": (
        ["model.optimizer.impl=foreach"],
        (
            "error: model.optimizer.impl=foreach is not available for Adam on cpu (available: fused, for_loop) "
            "-- use model.optimizer.impl=auto"
        ),
    ),
    "monitored metric not validated": (
        ["optimized_metric=val/iwae_5"],
        (
            "error: optimized_metric=val/iwae_5 is not a metric this run validates; choose one of: "
            "optimized_metric=val/elbo"
        ),
    ),
    "plateau schedule without a validation every epoch": (
        ["scheduler=plateau", "trainer.check_val_every_n_epoch=2"],
        (
            "error: scheduler=plateau steps on val/elbo after every training epoch, and "
            "trainer.check_val_every_n_epoch=2 leaves epochs without validation -- validate every epoch"
        ),
    ),
    "warm-up without a KL weight": (
        ["objective=iwae", "+callbacks@callbacks.kl_warmup=kl_warmup"],
        "error: callbacks.kl_warmup needs an objective with a KL weight (objective=elbo)",
    ),
    "doubly reparameterized gradient through a flow": (
        ["flow=iaf", "objective=iwae", "objective.gradient=dreg"],
        (
            "error: objective=iwae (k=5, gradient=dreg) needs parameters that are tensors (to evaluate log q(z) "
            "with them held fixed), which latent=normal through flow=iaf's TransformedDistribution posteriors "
            "lack -- set objective.gradient=total"
        ),
    ),
    "free bits without a closed-form KL": (
        ["prior=mog", "objective.free_bits=0.5"],
        (
            "error: objective.free_bits=0.5 needs the closed-form KL of each latent unit, which this model's "
            "prior, flow or latent layers lack -- set objective.free_bits=0"
        ),
    ),
    "total correlation through a flow": (
        ["flow=planar", "objective.tc_weight=6"],
        (
            "error: objective=elbo (beta=1.0, kl=mc, tc_weight=6.0) needs independent latent units (an Independent "
            "over them, each with its own density), which latent=normal through flow=planar's "
            "TransformedDistribution posteriors lack -- set objective.tc_weight=1"
        ),
    ),
    "MMD without a reparameterized sample": (
        ["estimator=score_function", "objective.mmd_weight=10"],
        (
            "error: estimator=score_function does not pair with objective=elbo (beta=1.0, kl=analytic, "
            "mmd_weight=10.0): its gradient flows through the training sample, which needs a reparameterized sample "
            "(explicit or implicit); choose one of: estimator=implicit, estimator=pathwise"
        ),
    ),
    "KL warm-up cycle shorter than its rise": (
        ["+callbacks@callbacks.kl_warmup=kl_warmup", "callbacks.kl_warmup.period=100"],
        "error: callbacks.kl_warmup.period=100 must be >= callbacks.kl_warmup.steps=30000: each cycle rises",
    ),
    "zero batch size": (
        ["data.batch_size=0"],
        "error: data.batch_size=0 and data.eval_batch_size must be >= 1",
    ),
    "zero latent size": (["model.latent.dim=0"], "error: model.latent.dim=0 must be >= 1"),
    "a codebook of one vector": (
        ["model=vq_vae", "model.latent.k=1"],
        "error: model.latent.k=1 must be >= 2",
    ),
    "a sphere of one coordinate": (
        ["latent=von_mises_fisher", "model.latent.dim=1"],
        "error: model.latent.dim=1 must be >= 2 (the sphere in R^dim; 2 is the circle)",
    ),
    "zero hidden layer": (
        ["model.encoder.hidden=[0]"],
        "error: layer sizes [0] must be positive integers",
    ),
    "non-positive learning rate": (
        ["model.optimizer.lr=-0.001"],
        "error: model.optimizer.lr=-0.001 must be a finite number > 0",
    ),
    "zero importance samples": (
        ["eval.iw_samples=0"],
        "error: eval.iw_samples=0 and eval.iw_chunk=4 must be integers >= 1",
    ),
    "impossible temperature": (
        ["model=gumbel_vae", "callbacks.temperature.tau_min=0"],
        "error: callbacks.temperature.tau_min=0 must be > 0",
    ),
    "temperature above start": (
        ["model=gumbel_vae", "callbacks.temperature.tau0=0.1"],
        "error: callbacks.temperature.tau0=0.1 must be >= callbacks.temperature.tau_min=0.5",
    ),
    "missing data offline": (
        ["paths.data_dir={empty}", "data.download=false"],
        "error: dataset files not found in {empty}",
    ),
    "corrupt checkpoint": (
        ["ckpt_path={corrupt}"],
        "error: ckpt_path={corrupt} cannot be read as a Lightning checkpoint",
    ),
    "checkpoint of another model": (
        ["model=gamma_vae", "ckpt_path={checkpoint}"],
        "error: ckpt_path={checkpoint} holds another model's weights",
    ),
    "finished run directory": (
        ["hydra.run.dir={finished}"],
        "error: {finished} already holds a finished run",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_ends_with_one_clear_line_and_leaves_earlier_outputs_alone(
    case, uninterrupted, data_dir, tmp_path
):
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes((uninterrupted / "checkpoints" / "last.ckpt").read_bytes()[:5000])
    places = {
        "empty": tmp_path / "empty",
        "corrupt": corrupt,
        "finished": uninterrupted,
        "checkpoint": uninterrupted / "checkpoints" / "last.ckpt",
    }
    raw_overrides, raw_expected = BAD_INPUTS[case]
    overrides, expected = [o.format(**places) for o in raw_overrides], raw_expected.format(**places)
    before = _fingerprint(uninterrupted)
    result = run_script(
        "train.py",
        "debug=fdr",
        *FAST,
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={tmp_path / 'new'}",
        *overrides,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(expected), result.stderr[-2000:]
    assert _fingerprint(uninterrupted) == before
