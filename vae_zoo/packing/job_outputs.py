"""What each job of a pack writes while the pack trains: its loggers' step and epoch values, and its
``checkpoints/`` (``last.ckpt`` at every validation, the best by its own monitored metric, and whatever the
pack's callbacks save: periodic and preemption checkpoints)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import Logger

from vae_zoo.checkpoint_io import DurableCheckpointIO
from vae_zoo.packing.job import PackJob
from vae_zoo.packing.job_checkpoints import job_checkpoint
from vae_zoo.packing.packed_vae import PackedVAE
from vae_zoo.packing.per_model_settings import PerModelSettings


@dataclass
class JobFiles:
    """One job's writers: its loggers, its checkpoint naming (its ``callbacks.model_checkpoint``: folder,
    file name, monitored metric and mode), and the config and choices its checkpoints carry."""

    loggers: list[Logger]
    checkpoint: ModelCheckpoint | None
    run: dict[str, Any]
    best_path: str = ""
    best_value: float | None = None
    last_path: str = ""


class JobOutputs(pl.Callback):
    """Writes each job's part of the pack as its unpacked run would: step values every
    ``log_every_n_steps``, validation means every epoch, ``last.ckpt`` and the best checkpoint (save_top_k
    = 1). A job whose guard stopped it writes nothing more: its last checkpoint is its last good one."""

    def __init__(self, jobs: list[JobFiles], settings: PerModelSettings) -> None:
        self.jobs, self.settings = jobs, settings
        self.io = DurableCheckpointIO()

    def on_train_batch_end(self, trainer: pl.Trainer, module: PackedVAE, outputs, batch, batch_idx) -> None:
        every = trainer.log_every_n_steps
        if not every or trainer.global_step % every:
            return
        for n, job in enumerate(self.jobs):
            if n in module.failures:
                continue
            values = {"train/loss": float(module.losses[n])}
            values |= {f"train/{name}": float(value[n]) for name, value in module.terms.items()}
            values |= {f"train/{name}": float(value[n]) for name, value in self.settings.values.items()}
            for logger in job.loggers:
                logger.log_metrics(values, step=trainer.global_step - 1)

    def on_validation_end(self, trainer: pl.Trainer, module: PackedVAE) -> None:
        if trainer.sanity_checking:
            return
        checkpoint = (
            trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
            if any(job.checkpoint for job in self.jobs)
            else {}
        )
        for n, job in enumerate(self.jobs):
            if n in module.failures:
                continue
            metrics = module.metrics["val"][n]
            for logger in job.loggers:
                logger.log_metrics({**metrics, "epoch": trainer.current_epoch}, step=trainer.global_step)
            if job.checkpoint is None:
                continue
            own = job_checkpoint(checkpoint, module, n, job.run)
            directory = Path(job.checkpoint.dirpath)
            job.last_path = str(directory / f"{ModelCheckpoint.CHECKPOINT_NAME_LAST}.ckpt")
            self.io.save_checkpoint(own, job.last_path)
            value, best = metrics[job.checkpoint.monitor], job.best_value
            if best is None or (value < best if job.checkpoint.mode == "min" else value > best):
                name = job.checkpoint.format_checkpoint_name(
                    {"epoch": trainer.current_epoch, "step": trainer.global_step, **metrics}
                )
                self.io.save_checkpoint(own, name)
                if job.best_path and job.best_path != name:
                    Path(job.best_path).unlink(missing_ok=True)
                job.best_path, job.best_value = name, value
            module.last_good[n] = job.last_path


class JobCheckpointIO(DurableCheckpointIO):
    """The pack trainer's checkpoint writer: a checkpoint saved to a path in the first job's directory (by
    ``PeriodicCheckpoint`` or ``Preemption``, which run as the first job's) is cut into each job's own and
    written at the same path in each job's directory. A job its guard stopped keeps its last good one."""

    def __init__(self, jobs: list[PackJob], files: list[JobFiles], module: PackedVAE) -> None:
        super().__init__()
        self.jobs, self.files, self.module = jobs, files, module

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any = None) -> None:
        within = Path(path).resolve().relative_to(self.jobs[0].output_dir.resolve())
        for n, (job, files) in enumerate(zip(self.jobs, self.files)):
            if n in self.module.failures:
                continue
            target = job.output_dir / within
            super().save_checkpoint(job_checkpoint(checkpoint, self.module, n, files.run), target)
            if target.name == f"{ModelCheckpoint.CHECKPOINT_NAME_LAST}.ckpt":
                files.last_path = self.module.last_good[n] = str(target)
