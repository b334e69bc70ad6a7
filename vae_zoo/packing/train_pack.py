"""``train()`` for a pack of jobs: each job built and checked as alone, trained together, each job's
directory written as its unpacked run writes it (``checkpoints/``, ``metrics.json``, its loggers)."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from pytorch_lightning.utilities.exceptions import SIGTERMException

from vae_zoo.callbacks.gradient_variance import GradientVariance
from vae_zoo.callbacks.image_grids import ImageGrids
from vae_zoo.callbacks.latent_maps import LatentMaps
from vae_zoo.callbacks.objective_schedule import ObjectiveSchedule
from vae_zoo.callbacks.progress_bar import ProgressBar
from vae_zoo.callbacks.temperature_annealing import TemperatureAnnealing
from vae_zoo.checkpoint_io import DurableCheckpointIO, read_lightning_checkpoint, remove_partial_checkpoints
from vae_zoo.cli import (
    build_callbacks,
    build_datamodule_and_model,
    build_trainer,
    check_optimized_metric,
    float_metrics,
    lightning_trainer,
    reseed,
    stopped_by_signal,
    write_metrics,
)
from vae_zoo.errors import VaeZooError, cause_of_type
from vae_zoo.initial_weights import start_from_checkpoint
from vae_zoo.packing.job import PackJob
from vae_zoo.packing.job_checkpoints import pack_checkpoint
from vae_zoo.packing.job_diagnostics import JobDiagnostics
from vae_zoo.packing.job_outputs import JobCheckpointIO, JobFiles, JobOutputs
from vae_zoo.packing.pack import unpacked_state_dict
from vae_zoo.packing.packed_data import PackedDataModule
from vae_zoo.packing.packed_vae import PackedVAE
from vae_zoo.packing.per_model_early_stopping import PerModelEarlyStopping
from vae_zoo.packing.per_model_settings import PerModelSettings, of_type
from vae_zoo.run_identity import hydra_choices, run_identity
from vae_zoo.run_lock import run_directory_lock
from vae_zoo.trackers import build_loggers, log_hparams_row


def build_job(job: PackJob) -> tuple[pl.LightningDataModule, pl.LightningModule]:
    """The job's data module and model, seeded, checked and started (``init.checkpoint``) as ``train()`` builds
    them."""
    with job.current():
        reseed(job.cfg)
        datamodule, model = build_datamodule_and_model(job.cfg)
        check_optimized_metric(job.cfg, model)
        started = start_from_checkpoint(job.cfg.get("init"), model)
    if started:
        print(f"packed: {job.output_dir}: {started}")
    return datamodule, model


def build_pack(jobs: Sequence[PackJob]) -> tuple[PackedDataModule, PackedVAE]:
    """The pack's data module and packed module, every job built by ``build_job``."""
    built = [build_job(job) for job in jobs]
    return PackedDataModule([datamodule for datamodule, _ in built]), PackedVAE([model for _, model in built])


def train_pack(jobs: Sequence[PackJob]) -> list[dict[str, Any] | VaeZooError]:
    """Each job's ``metrics.json`` contents, or the one-line error that kept it from training or stopped it
    (the others train on; an error of the pack as a whole, such as a callback that does not fit the model,
    is every job's)."""
    results: list[dict[str, Any] | VaeZooError] = [{} for _ in jobs]
    built = []
    for n, job in enumerate(jobs):
        try:
            built.append((n, *build_job(job)))
        except Exception as error:  # noqa: BLE001 -- a job with a bad setting fails alone (others re-raise)
            results[n] = _user_error(error)
    if built:
        members = [jobs[n] for n, _, _ in built]
        try:
            outcome = _train_built(members, [d for _, d, _ in built], [m for _, _, m in built])
        except Exception as error:  # noqa: BLE001 -- what stops the pack (a callback's check) fails its jobs
            outcome = [_user_error(error)] * len(built)
        for (n, _, _), result in zip(built, outcome):
            results[n] = result
    return results


def _user_error(error: Exception) -> VaeZooError:
    cause = cause_of_type(error, VaeZooError)
    if cause is None:
        raise error
    return cause


def _train_built(
    jobs: Sequence[PackJob], datamodules: list[pl.LightningDataModule], runs: list[pl.LightningModule]
) -> list[dict[str, Any] | VaeZooError]:
    datamodules[0].prepare_data()
    if hasattr(datamodules[0], "read_files"):
        datamodules[0].read_files()
    packed = PackedVAE(runs)
    files = []
    for job in jobs:
        with job.current():
            checkpoint = build_callbacks(job.cfg).get("model_checkpoint")  # callbacks=none: none, as alone
            run = {"config": OmegaConf.to_container(job.cfg, resolve=False), "choices": dict(hydra_choices())}
            files.append(JobFiles(build_loggers(job.cfg), checkpoint, run))
            for logger in files[-1].loggers:
                logger.log_hyperparams(OmegaConf.to_container(job.cfg, resolve=True))
    with contextlib.ExitStack() as stack:
        for job in jobs:
            stack.enter_context(run_directory_lock(job.output_dir))
            remove_partial_checkpoints(job.output_dir / "checkpoints")
        resume = _resume_checkpoint(jobs, stack.enter_context(tempfile.TemporaryDirectory()))
        count = f"{len(jobs)} job" + ("s train" if len(jobs) > 1 else " trains")
        print(f"packed: {count} as one model: " + ", ".join(str(job.output_dir) for job in jobs))
        configured = [_callbacks(job) for job in jobs]
        trainer = _pack_trainer(jobs, packed, files, configured, datamodules)
        with jobs[0].current():  # the pack's trainer is the first job's
            try:
                trainer.fit(packed, datamodule=PackedDataModule(datamodules), ckpt_path=resume)
            except SIGTERMException:
                stopped_by_signal(trainer, jobs=len(jobs))
        return [
            _finish(job, datamodule, run, own, packed, trainer, n, list(configured[n].values()))
            for n, (job, datamodule, run, own) in enumerate(zip(jobs, datamodules, runs, files))
        ]


#: the callbacks a pack runs per job: checkpoints (``JobOutputs``), early stopping (``PerModelEarlyStopping``),
#: each job's own warm-up, capacity and temperature (``PerModelSettings``), image grids and gradient variance
#: (``JobDiagnostics``), latent maps (after its final test); callbacks with ``pack_wide = True`` (the progress
#: bar, periodic and preemption checkpoints, which ``JobCheckpointIO`` writes for every job) run once, as the
#: first job's
PER_JOB_CALLBACKS = (
    ModelCheckpoint,
    EarlyStopping,
    ObjectiveSchedule,
    TemperatureAnnealing,
    ImageGrids,
    GradientVariance,
    LatentMaps,
)


def _callbacks(job: PackJob) -> dict[str, pl.Callback]:
    with job.current():
        return build_callbacks(job.cfg)


def _pack_trainer(
    jobs: Sequence[PackJob],
    packed: PackedVAE,
    files: list[JobFiles],
    configured: list[dict[str, pl.Callback]],
    datamodules: list[pl.LightningDataModule],
) -> pl.Trainer:
    """The pack's Trainer: the first job's settings, progress bar, periodic and preemption checkpoints (cut
    into every job's by ``JobCheckpointIO``), each job's KL warm-up and temperature annealing applied to its
    model (``PerModelSettings``), the jobs' own outputs and diagnostics; no logger or checkpoint of its own."""
    left_out = [
        name
        for name, c in configured[0].items()
        if not isinstance(c, PER_JOB_CALLBACKS) and not getattr(c, "pack_wide", False)
    ]
    if left_out:
        print(
            f"packed: callbacks {', '.join(left_out)} do not run in a pack yet (each job still gets its "
            "checkpoints, metrics.json and loggers) -- train these jobs unpacked to have them"
        )
    callbacks = [list(c.values()) for c in configured]
    settings = PerModelSettings(packed.runs, callbacks)
    first = [c for c in callbacks[0] if getattr(c, "pack_wide", False)]
    io = JobCheckpointIO(list(jobs), files, packed)
    for path in filter(None, (getattr(c, "path", None) for c in first)):  # where they will save, checked now
        io.within(path)
    with jobs[0].current():
        return lightning_trainer(
            jobs[0].cfg,
            plugins=[io],
            callbacks=[
                settings,
                # before the outputs: a model stopping at a validation still saves it, as an unpacked run does
                PerModelEarlyStopping(
                    [of_type(c, EarlyStopping) for c in callbacks], [str(job.output_dir) for job in jobs]
                ),
                JobOutputs(files, settings),
                JobDiagnostics(callbacks, datamodules, files, settings),
                *first,
            ],
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=of_type(first, ProgressBar) is not None,
        )


def _resume_checkpoint(jobs: Sequence[PackJob], scratch: str) -> str | None:
    """With ``ckpt_path=last`` on every job: the jobs' ``last.ckpt`` stacked into one file in ``scratch``,
    which the pack resumes from."""
    wanted = {str(job.cfg.get("ckpt_path")) for job in jobs}
    if wanted == {"None"}:
        return None
    if wanted != {"last"}:
        raise VaeZooError(
            f"a pack resumes with ckpt_path=last on every job, not {', '.join(sorted(wanted))} -- resume the "
            "jobs in their own directories with ckpt_path=last"
        )
    paths = [str(job.output_dir / "checkpoints" / "last.ckpt") for job in jobs]
    missing = [path for path in paths if not Path(path).is_file()]
    if missing:
        raise VaeZooError(f"ckpt_path=last: {missing[0]} does not exist -- train these jobs first")
    stacked = pack_checkpoint([read_lightning_checkpoint(path) for path in paths], paths)
    target = Path(scratch) / "pack.ckpt"
    DurableCheckpointIO().save_checkpoint(stacked, str(target))
    return str(target)


def _finish(
    job: PackJob,
    datamodule: pl.LightningDataModule,
    run: pl.LightningModule,
    files: JobFiles,
    packed: PackedVAE,
    pack_trainer: pl.Trainer,
    n: int,
    callbacks: list[pl.Callback],
) -> dict[str, Any] | VaeZooError:
    """The job's final validation and test, unpacked on its best checkpoint as ``train()`` runs them (so its
    ``metrics.json`` is what ``eval.py`` on that checkpoint reports), its latent maps, and the file written."""
    if n in packed.failures:
        return VaeZooError(packed.failures[n])
    stopped = packed.stopped.get(n)
    # its final weights, where no checkpoint is: those it stopped early with, else the pack's last
    run.load_state_dict(stopped.weights if stopped else unpacked_state_dict(packed.model, n))
    epochs = stopped.epochs if stopped else pack_trainer.current_epoch
    step = stopped.global_step if stopped else pack_trainer.global_step
    with job.current():
        trainer = build_trainer(job.cfg, logging=False)
        checkpoint = files.best_path or None
        val = trainer.validate(run, datamodule=datamodule, ckpt_path=checkpoint, verbose=False)
        reseed(job.cfg)
        test = trainer.test(run, datamodule=datamodule, ckpt_path=checkpoint, verbose=False)
        for maps in (c for c in callbacks if isinstance(c, LatentMaps)):
            maps.draw(pack_trainer, run, datamodule, files.loggers)
        values = float_metrics(val + test)
        metrics = {
            **run_identity(job.cfg),
            "checkpoint": files.best_path,
            "epochs": epochs,
            "global_step": step,
            "kl": run.model.kl_origin,
            **values,
        }
        write_metrics(job.output_dir / "metrics.json", metrics)
        for logger in files.loggers:  # the final validation and test, as an unpacked run's trainer logs them
            logger.log_metrics(values, step=step)
        log_hparams_row(files.loggers, job.cfg, values, step=step)
        for logger in files.loggers:
            logger.finalize("success")
    return metrics
