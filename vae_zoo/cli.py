"""``train(cfg)``, ``evaluate(cfg)`` and ``sample(cfg)``, and the Hydra mains that run them (``vae_zoo.commands``
starts them for ``train.py``, ``eval.py`` and ``sample.py``)."""

from __future__ import annotations

import json
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar
from pytorch_lightning.utilities import rank_zero_only
from pytorch_lightning.utilities.exceptions import SIGTERMException
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from vae_zoo.callbacks.preemption import Preemption
from vae_zoo.checkpoint_io import (
    DurableCheckpointIO,
    read_lightning_checkpoint,
    refuse_nonfinite_weights,
    remove_partial_checkpoints,
)
from vae_zoo.components import build
from vae_zoo.config_groups import CONFIG_DIR
from vae_zoo.config_tree import print_config_tree
from vae_zoo.console import route_lightning_logs_through_hydra, start_line
from vae_zoo.data.datamodule import serve_labels
from vae_zoo.data.files import DataFileError
from vae_zoo.errors import ConfigError, DataNotFoundError, VaeZooError, cause_of_type
from vae_zoo.initial_weights import start_from_checkpoint
from vae_zoo.resolvers import register_resolvers
from vae_zoo.run_identity import hydra_choices, run_identity
from vae_zoo.run_lock import run_directory_lock
from vae_zoo.sampling import write_grids
from vae_zoo.saved_run import RunConfigInCheckpoint, read_saved_run
from vae_zoo.setting_types import fits
from vae_zoo.trackers import build_loggers, log_hparams_row

NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"
register_resolvers()
# Lightning's pytree helper trips a torch deprecation on every fit; nothing a user can act on.
warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
# A run resuming in place (ckpt_path=last) has checkpoints in its folder by design; other runs cannot write
# into a folder that holds checkpoints (RunDirectoryGuard), so Lightning's warning about one says nothing.
warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
# Resuming from a checkpoint of another directory (ckpt_path=<another run's file>) is a supported start: Lightning's
# note that the checkpoint callback's bookkeeping of that directory is not carried over says nothing to act on.
warnings.filterwarnings("ignore", message=r"The dirpath has changed from")


def build_datamodule_and_model(cfg: DictConfig) -> tuple[pl.LightningDataModule, pl.LightningModule]:
    """The datamodule, and the model sized to its images (and a conditional model to its classes, the
    datamodule then serving labels) and checked against its pixels; components (and the top-level
    ``objective``) reach the model as plain dicts."""
    datamodule = build(OmegaConf.to_container(cfg.data, resolve=True), pl.LightningDataModule, "data")
    objective = OmegaConf.to_container(cfg.objective, resolve=True) if "objective" in cfg else None
    conditional = {}
    if cfg.model.get("condition"):
        serve_labels(datamodule)
        conditional["classes"] = datamodule.classes
    model = build(
        OmegaConf.to_container(cfg.model, resolve=True),
        pl.LightningModule,
        "model",
        input_shape=list(datamodule.input_shape),
        pixels=datamodule.pixels,
        objective=objective,
        iw_samples=cfg.eval.iw_samples,
        iw_chunk=cfg.eval.iw_chunk,
        **conditional,
    )
    if getattr(datamodule, "labels_kept", None) is not None and not model.objective.infers_labels:
        raise ConfigError(
            f"data.labels={datamodule.labels_kept} withholds the other training labels, and only "
            "objective=semi_supervised trains on unlabelled images: add objective=semi_supervised classifier=mlp "
            "condition=label, or data.labels=null"
        )
    if hasattr(datamodule, "columns"):  # a table's column kinds and statistics, into its likelihood
        model.model.likelihood.adopt(datamodule.columns())
    return datamodule, model


def skip_nvml_probe_without_cuda_devices() -> None:
    """Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` on import, so that asking for CUDA does not
    initialise it before worker processes fork. Without a CUDA device torch then never caches the
    answer and loads NVML again at every ``torch.cuda.is_available()``, which every ``torch.optim``
    step calls: about 0.25 ms per step on a CPU-only machine with a CUDA build of torch. With no device
    there is nothing to initialise, so the ordinary (cached, ~1 us) check is restored."""
    if os.environ.get(NVML_CHECK) == "1" and torch.cuda.device_count() == 0:
        del os.environ[NVML_CHECK]


def build_trainer(cfg: DictConfig, logging: bool = True) -> pl.Trainer:
    """The Trainer with the configured callbacks and loggers (none of either when ``logging`` is off).
    Lightning adds a checkpoint callback and a progress bar of its own unless told not to; here the
    configured callbacks decide (``callbacks=none``: neither)."""
    skip_nvml_probe_without_cuda_devices()
    callbacks = list(build_callbacks(cfg).values()) if logging else []
    if logging:  # a training run: its checkpoints carry its config, for eval.py and sample.py on them alone
        callbacks.append(RunConfigInCheckpoint(OmegaConf.to_container(cfg, resolve=False), hydra_choices()))
    return lightning_trainer(
        cfg,
        plugins=[DurableCheckpointIO()],
        callbacks=callbacks,
        logger=(build_loggers(cfg) if logging else []) or False,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        enable_progress_bar=any(isinstance(c, ProgressBar) for c in callbacks),
    )


def lightning_trainer(cfg: DictConfig, **kwargs: Any) -> pl.Trainer:
    """``cfg.trainer`` built (``build``: its settings checked against the Trainer's) with ``kwargs``."""
    every = cfg.trainer.get("check_val_every_n_epoch")
    if fits(every, int) and every < 1:  # Lightning takes 0 and then divides by it
        raise ConfigError(
            f"trainer.check_val_every_n_epoch={every} must be >= 1 (or null: validate by val_check_interval alone)"
        )
    return build(OmegaConf.to_container(cfg.trainer, resolve=True), pl.Trainer, "trainer", **kwargs)


def build_callbacks(cfg: DictConfig) -> dict[str, pl.Callback]:
    """``cfg.callbacks`` built by name (``build``: each a Lightning callback with its settings checked)."""
    nodes = OmegaConf.to_container(cfg.callbacks, resolve=True) if cfg.get("callbacks") else {}
    return {
        name: build(node, pl.Callback, f"callbacks.{name}")
        for name, node in nodes.items()
        if node and "_target_" in node
    }


def check_optimized_metric(cfg: DictConfig, model: pl.LightningModule) -> None:
    """``optimized_metric`` (the checkpoint monitor, the sweepers' value), and any callback's own ``monitor``
    (``callbacks.model_checkpoint.monitor=...``), must be a metric validation logs; a plateau schedule, which
    steps on ``optimized_metric`` after every training epoch, needs a validation in every epoch."""
    scheduler = (cfg.get("model") or {}).get("scheduler")
    every = cfg.trainer.get("check_val_every_n_epoch", 1)
    plateau = scheduler and issubclass(
        build(scheduler, LRScheduler, "model.scheduler").func, ReduceLROnPlateau
    )
    if plateau and (every != 1 or cfg.trainer.get("limit_val_batches") == 0):
        given = f"trainer.check_val_every_n_epoch={every}" if every != 1 else "trainer.limit_val_batches=0"
        raise ConfigError(
            f"scheduler=plateau steps on {cfg.optimized_metric} after every training epoch, and {given} leaves "
            "epochs without validation -- validate every epoch, or choose scheduler=cosine"
        )
    monitored = {"optimized_metric": cfg.get("optimized_metric")}
    for name, node in (cfg.get("callbacks") or {}).items():
        if isinstance(node, DictConfig) and "monitor" in node and node.monitor is not None:
            monitored[f"callbacks.{name}.monitor"] = node.monitor
    for key, metric in monitored.items():
        if metric not in model.validation_metrics:
            choices = ", ".join(f"{key}={name}" for name in model.validation_metrics)
            raise ConfigError(f"{key}={metric} is not a metric this run validates; choose one of: {choices}")


@rank_zero_only
def write_metrics(path: Path, metrics: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")


def float_metrics(results: list[dict[str, Any]]) -> dict[str, float]:
    return {name: float(value) for result in results for name, value in result.items()}


def checked_checkpoint(path: str | None, model: pl.LightningModule, output_dir: Path) -> str | None:
    """``path`` if it is a readable Lightning checkpoint whose weights fit ``model``; else a one-line error.
    ``last`` is passed on for Lightning to resolve to ``<output_dir>/checkpoints/last.ckpt``, checked first
    where that file exists."""
    if path is None:
        return path
    if path == "last":
        last = output_dir / "checkpoints" / "last.ckpt"
        if last.is_file():
            checked_checkpoint(str(last), model, output_dir)
        return path
    if not Path(path).is_file():
        raise VaeZooError(
            f"ckpt_path={path} does not exist -- pass a .ckpt file from a run's checkpoints/ folder"
        )
    checkpoint = read_lightning_checkpoint(path)
    hparams = checkpoint.get("hyper_parameters")
    saved = bool(hparams.get("condition")) if isinstance(hparams, dict) else False
    if saved != bool(model.hparams.get("condition")):
        kinds = (
            ("an unconditional", "conditional (condition=label)", "none")
            if not saved
            else ("a conditional", "unconditional (condition=none)", "label")
        )
        raise VaeZooError(
            f"ckpt_path={path} holds {kinds[0]} model's weights, and this run is {kinds[1]} -- resume it with "
            f"condition={kinds[2]}, or start this run without ckpt_path"
        )
    state = checkpoint["state_dict"]
    expected = model.state_dict()
    problems = sorted(set(expected) ^ set(state)) + [
        k for k in expected if k in state and getattr(state[k], "shape", None) != expected[k].shape
    ]
    if problems:
        raise VaeZooError(
            f"ckpt_path={path} holds another model's weights ({len(problems)} tensors differ, e.g. {problems[0]}) "
            f"-- use the model= and size overrides it was trained with, or a checkpoint of this {type(model).__name__}"
        )
    refuse_nonfinite_weights(
        state,
        f"ckpt_path={path}",
        ": training cannot continue from them -- resume from an earlier checkpoint of the run",
    )
    return path


def stopped_by_signal(trainer: pl.Trainer, jobs: int = 1) -> None:
    """After Lightning stopped on SIGTERM/SIGINT/SIGUSR2: one line naming the saved checkpoint (of each of a
    pack's ``jobs``), the signal's earlier handler for a SIGUSR2 (a SLURM requeue), exit 128 + signal."""
    preemption = next((c for c in trainer.callbacks if isinstance(c, Preemption)), None)
    signum = (preemption.signal_received if preemption else None) or signal.SIGTERM
    if preemption is not None and preemption.saved is not None and jobs > 1:
        where = (
            f"saved {preemption.saved} and the same file in each of the pack's other {jobs - 1} job directories "
            "-- continue the sweep with ckpt_path=last"
        )
    elif preemption is not None and preemption.saved is not None:
        where = f"saved {preemption.saved} -- continue with ckpt_path={preemption.saved}"
    else:
        where = "no checkpoint saved (the preemption callback is off)"
    rank_zero_only(print)(
        f"stopped by {signal.Signals(signum).name} at step {trainer.global_step}; {where}", file=sys.stderr
    )
    if preemption is not None:
        preemption.hand_over()  # SIGUSR2 under submitit: its handler requeues the job (and exits)
    sys.exit(128 + signum)


def reseed(cfg: DictConfig) -> None:
    """Seed every generator with ``seed`` (null: leave them unseeded)."""
    seed = cfg.get("seed")
    if seed is None:
        return
    if not fits(seed, int) or not 0 <= seed < 2**32:
        raise ConfigError(f"seed={seed!r} must be an integer from 0 to {2**32 - 1} (or null: unseeded)")
    pl.seed_everything(seed, workers=True, verbose=False)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, then validate and test the best checkpoint; write ``metrics.json`` in the run directory."""
    output_dir = Path(cfg.paths.output_dir)
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")
    reseed(cfg)
    # Everything that can be wrong with the input fails here, before the config tree is printed:
    datamodule, model = build_datamodule_and_model(cfg)  # pairings, sizes, the likelihood's pixels
    check_optimized_metric(cfg, model)
    started = start_from_checkpoint(cfg.get("init"), model)
    if started:
        rank_zero_only(print)(started)
    if rank_zero_only.rank == 0:
        datamodule.prepare_data()  # the data files (downloaded where allowed)
        # and read: a truncated or corrupt one stops the run here (a plain LightningDataModule reads in setup)
        if hasattr(datamodule, "read_files"):
            datamodule.read_files()
    ckpt_path = checked_checkpoint(cfg.get("ckpt_path"), model, output_dir)
    with run_directory_lock(output_dir, take=rank_zero_only.rank == 0):  # one process writes a run dir
        if rank_zero_only.rank == 0:
            remove_partial_checkpoints(output_dir / "checkpoints")  # a killed writer's, now nobody's
        return _fit_and_test(cfg, datamodule, model, ckpt_path)


def _fit_and_test(
    cfg: DictConfig, datamodule: pl.LightningDataModule, model: pl.LightningModule, ckpt_path: str | None
) -> dict[str, Any]:
    output_dir = Path(cfg.paths.output_dir)
    trainer = build_trainer(cfg)  # the trackers' packages
    rank_zero_only(print_config_tree)(cfg, save_to=output_dir / "config_tree.log")
    rank_zero_only(print)(start_line(cfg, trainer, str(output_dir)), flush=True)
    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    except SIGTERMException:
        stopped_by_signal(trainer)

    checkpoint = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    val = trainer.validate(model, datamodule=datamodule, ckpt_path=checkpoint or None, verbose=False)
    reseed(cfg)  # evaluation draws the same samples as `eval.py` on this checkpoint
    test = trainer.test(model, datamodule=datamodule, ckpt_path=checkpoint or None)
    metrics = {
        **run_identity(cfg),
        "checkpoint": checkpoint,
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "kl": model.model.kl_origin,  # how val/kl and test/kl were computed: closed form or one-sample estimate
        **float_metrics(val + test),
    }
    write_metrics(output_dir / "metrics.json", metrics)
    log_hparams_row(trainer.loggers, cfg, float_metrics(val + test), step=trainer.global_step)
    return metrics


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Recompute the test metrics of ``cfg.ckpt_path`` (a checkpoint or a run directory): its model, its run's
    data (or ``data=``)."""
    run = read_saved_run(cfg, "eval.py")
    datamodule = run.datamodule()
    model = run.model(datamodule)
    print_config_tree(run.config, save_to=Path(cfg.paths.output_dir) / "config_tree.log")
    trainer = build_trainer(run.config, logging=False)
    reseed(run.config)
    checkpoint = str(run.path)  # ckpt_path's checkpoint, or the one its run directory's metrics came from
    with warnings.catch_warnings():  # it only tests: the callbacks that trained the checkpoint do not matter
        warnings.filterwarnings("ignore", message=r"Be aware that when using `ckpt_path`, callbacks")
        test = trainer.test(model, datamodule=datamodule, ckpt_path=checkpoint)
    identity = run_identity(run.run_config, run.choices)
    if "_target_" in (cfg.get("data") or {}):
        identity["data"] = run_identity(run.config, hydra_choices())["data"]
    metrics = {**identity, "checkpoint": checkpoint, **float_metrics(test)}
    metrics["iw_samples"] = cfg.eval.iw_samples
    write_metrics(Path(cfg.paths.output_dir) / "metrics.json", metrics)
    return metrics


def sample(cfg: DictConfig) -> list[Path]:
    """PNG grids of ``cfg.ckpt_path``'s model (``vae_zoo.sampling``), written to this job's directory; the
    pictures of test images are left out, saying so, where the run's data cannot be read here."""
    run = read_saved_run(cfg, "sample.py")
    try:
        datamodule = run.datamodule()
        datamodule.sample_images("test", 1)
    except (DataNotFoundError, DataFileError) as missing:
        print(f"sample: no test images ({missing}); drawing from the prior only")
        datamodule = None
    model = run.model(datamodule)
    options = OmegaConf.to_container(cfg.grids, resolve=True)
    paths = write_grids(model.model, datamodule, Path(cfg.paths.output_dir), seed=cfg.seed, **options)
    for path in paths:
        print(f"wrote {path}")
    return paths


def user_error(error: BaseException | None) -> VaeZooError | None:
    """The VaeZooError behind ``error``, if any (Hydra's instantiate wraps constructor errors); an
    interpolation of the run's config that does not resolve (``model.latent.dim='${nowhere}'``) is one too."""
    unresolved = cause_of_type(error, InterpolationResolutionError)
    if unresolved is not None and cause_of_type(error, VaeZooError) is None:
        where = f"{unresolved.full_key}: " if getattr(unresolved, "full_key", None) else ""
        reason = str(unresolved).strip().splitlines()[0]
        return ConfigError(f"{where}{reason} -- fix the override or the config that sets it")
    return cause_of_type(error, VaeZooError)


def _report_user_errors(fn, cfg: DictConfig) -> Any:
    route_lightning_logs_through_hydra()
    try:
        return fn(cfg)
    except Exception as error:
        cause = user_error(error)
        if cause is None:
            raise
        print(f"error: {cause}", file=sys.stderr)
        sys.exit(2)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def train_task(cfg: DictConfig) -> float | None:
    """Returns ``metrics[optimized_metric]`` (default ``val/elbo``), the value Hydra's sweepers minimise."""
    metrics = _report_user_errors(train, cfg)
    return metrics.get(cfg.get("optimized_metric")) if metrics else None


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def eval_task(cfg: DictConfig) -> None:
    _report_user_errors(evaluate, cfg)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="sample")
def sample_task(cfg: DictConfig) -> None:
    _report_user_errors(sample, cfg)
