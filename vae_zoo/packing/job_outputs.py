"""What each job of a pack writes while the pack trains: its loggers' step and epoch values, and its
``checkpoints/`` (``last.ckpt`` at every validation, the best by its own monitored metric, each saved where
its unpacked run's ``ModelCheckpoint`` saves it, and whatever the pack's callbacks save: periodic and
preemption checkpoints)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import Logger
from torch import Tensor

from vae_zoo.checkpoint_io import DurableCheckpointIO
from vae_zoo.data.tensor_batches import images_and_labels
from vae_zoo.errors import VaeZooError
from vae_zoo.packing.job import PackJob
from vae_zoo.packing.job_checkpoints import JOB_CALLBACKS, job_checkpoint
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
    ``log_every_n_steps`` (with a schedule, the model's learning rate), the epoch means of its training loss
    and terms (``train/<name>_epoch``, its skipped batches left out, checkpointed for a resume mid-epoch),
    validation means every epoch, ``last.ckpt`` and the best checkpoint (save_top_k = 1). A job whose guard or
    early stopping stopped it writes nothing more: its last checkpoint is its last good one, or the one of the
    validation it stopped at."""

    def __init__(self, jobs: list[JobFiles], settings: PerModelSettings) -> None:
        self.jobs, self.settings = jobs, settings
        self.io = DurableCheckpointIO()
        self.names: list[str] = []
        self.sums: Tensor | None = None  # (models, names): image-weighted sums over the epoch's batches
        self.images: Tensor | None = None  # (models,)
        self.epoch = -1
        self.rates: list[float] = []  # this step's learning rate of each model, with a schedule

    def on_train_epoch_start(self, trainer: pl.Trainer, module: PackedVAE) -> None:
        if self.epoch != trainer.current_epoch:  # else a resume mid-epoch: the sums restored go on
            self.names, self.sums, self.images, self.epoch = [], None, None, trainer.current_epoch

    def _add_to_epoch_means(self, trainer: pl.Trainer, module: PackedVAE, rows: int) -> None:
        """This step's loss and terms, weighted by each model's images where its update was applied; the sums
        stay on the device (no host synchronization per step)."""
        values = torch.stack([module.losses, *module.terms.values()], 1).detach().double()
        applied = torch.tensor(trainer.optimizers[0].active, dtype=torch.float64, device=values.device) * rows
        if self.sums is None:
            self.names, self.sums, self.images = (
                ["loss", *module.terms],
                torch.zeros_like(values),
                applied * 0,
            )
        elif self.sums.device != values.device:  # restored from a checkpoint (on the host)
            self.sums, self.images = self.sums.to(values.device), self.images.to(values.device)
        self.sums += torch.nan_to_num(values) * applied[:, None]
        self.images += applied

    def on_train_epoch_end(self, trainer: pl.Trainer, module: PackedVAE) -> None:
        for n, job in enumerate(self.jobs):
            if self.sums is None or n in module.failures or not self.images[n]:
                continue
            means = {
                f"train/{name}_epoch": float(self.sums[n, i] / self.images[n])
                for i, name in enumerate(self.names)
            }
            for logger in job.loggers:  # at the epoch's last step, where Lightning logs an unpacked run's
                logger.log_metrics(means, step=trainer.global_step - 1)
        if self._saves_at_epoch_end(trainer):
            self._save(trainer, module)

    def state_dict(self) -> dict[str, Any]:
        host = lambda t: None if t is None else t.cpu()
        return {
            "epoch": self.epoch,
            "names": self.names,
            "sums": host(self.sums),
            "images": host(self.images),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.epoch, self.names = state_dict["epoch"], state_dict["names"]
        self.sums, self.images = state_dict["sums"], state_dict["images"]

    def on_train_batch_start(self, trainer: pl.Trainer, module: PackedVAE, batch, batch_idx) -> None:
        """With a schedule, each model's learning rate for this step (read now: a schedule by epoch moves it
        before the batch's end)."""
        if module.runs[0].hparams.scheduler:
            self.rates = [own.param_groups[0]["lr"] for own in trainer.optimizers[0].optimizers]

    def on_train_batch_end(self, trainer: pl.Trainer, module: PackedVAE, outputs, batch, batch_idx) -> None:
        self._add_to_epoch_means(trainer, module, len(images_and_labels(batch)[0]) // module.models)
        every = trainer.log_every_n_steps
        if not every or trainer.global_step % every:
            return
        for n, job in enumerate(self.jobs):
            if module.done(n):
                continue
            values = {"train/loss": float(module.losses[n])}
            values |= {f"train/{name}": float(value[n]) for name, value in module.terms.items()}
            values |= {f"train/{name}": float(value[n]) for name, value in self.settings.values.items()}
            if self.rates:
                values["train/lr"] = float(self.rates[n])
            for logger in job.loggers:
                logger.log_metrics(values, step=trainer.global_step - 1)

    def on_validation_end(self, trainer: pl.Trainer, module: PackedVAE) -> None:
        if trainer.sanity_checking:
            return
        for n, job in enumerate(self.jobs):
            if not self._writes(trainer, module, n):
                continue
            for logger in job.loggers:
                # at the epoch's last step, as Lightning logs an unpacked run's validation
                values = {**module.metrics["val"][n], "epoch": trainer.current_epoch}
                logger.log_metrics(values, step=trainer.global_step - 1)
        if not self._saves_at_epoch_end(trainer):
            self._save(trainer, module)

    @staticmethod
    def _writes(trainer: pl.Trainer, module: PackedVAE, n: int) -> bool:
        """Whether job ``n`` still writes: not failed, nor stopped early before this step (a model its early
        stopping stops at this validation still writes it, as alone)."""
        stopped = module.stopped.get(n)
        return n not in module.failures and (stopped is None or stopped.global_step == trainer.global_step)

    def _saves_at_epoch_end(self, trainer: pl.Trainer) -> bool:
        """Where the jobs' ``ModelCheckpoint`` saves an unpacked run's: at the end of the training epoch when
        validation ends every epoch (so that a checkpoint's loop state is an unpacked run's), else after each
        validation."""
        checkpoint = next((job.checkpoint for job in self.jobs if job.checkpoint), None)
        return checkpoint is not None and checkpoint._should_save_on_train_epoch_end(trainer)

    def _save(self, trainer: pl.Trainer, module: PackedVAE) -> None:
        """Each writing job's ``last.ckpt``, and its best checkpoint where its monitored value improved (each
        checkpoint holding the job's checkpoint record with itself in it, as ``ModelCheckpoint`` saves)."""
        if "val" not in module.metrics or not any(job.checkpoint for job in self.jobs):
            return
        writing = [
            n for n, job in enumerate(self.jobs) if job.checkpoint and self._writes(trainer, module, n)
        ]
        improved, replaced = {}, {}
        for n in writing:
            job, metrics = self.jobs[n], module.metrics["val"][n]
            job.last_path = str(Path(job.checkpoint.dirpath) / f"{ModelCheckpoint.CHECKPOINT_NAME_LAST}.ckpt")
            value, best = metrics[job.checkpoint.monitor], job.best_value
            if best is None or (value < best if job.checkpoint.mode == "min" else value > best):
                improved[n] = job.checkpoint.format_checkpoint_name(
                    {"epoch": trainer.current_epoch, "step": trainer.global_step, **metrics}
                )
                replaced[n] = job.best_path
                job.best_path, job.best_value = improved[n], value
        checkpoint = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
        for n in writing:
            job = self.jobs[n]
            own = job_checkpoint(checkpoint, module, n, job.run)
            self.io.save_checkpoint(own, job.last_path)
            if n in improved:
                self.io.save_checkpoint(own, improved[n])
                if replaced[n] and replaced[n] != improved[n]:
                    Path(replaced[n]).unlink(missing_ok=True)
            module.last_good[n] = job.last_path

    def on_save_checkpoint(self, trainer: pl.Trainer, module: PackedVAE, checkpoint: dict[str, Any]) -> None:
        """Each job's checkpoint record (its best and last checkpoints) as its ``ModelCheckpoint`` keeps it, under
        that callback's key among the job's own callback states: an unpacked resume reads it as its own."""
        states = checkpoint.setdefault(JOB_CALLBACKS, [{} for _ in self.jobs])
        for n, job in enumerate(self.jobs):
            if job.checkpoint is None:
                continue
            score = None if job.best_value is None else torch.tensor(job.best_value)
            best = {job.best_path: score} if job.best_path else {}
            states[n][job.checkpoint.state_key] = {
                **job.checkpoint.state_dict(),
                "best_model_score": score,
                "best_model_path": job.best_path,
                "best_k_models": best,
                "kth_best_model_path": job.best_path,
                "kth_value": score if best else job.checkpoint.kth_value,
                "last_model_path": job.last_path,
            }

    def on_load_checkpoint(self, trainer: pl.Trainer, module: PackedVAE, checkpoint: dict[str, Any]) -> None:
        """A packed resume: each job's best and last checkpoints, from its record where it was written for the
        same folder (as ``ModelCheckpoint`` reads its own)."""
        for job, states in zip(self.jobs, checkpoint.get(JOB_CALLBACKS, []), strict=False):
            state = states.get(job.checkpoint.state_key) if job.checkpoint else None
            if state and state["best_model_path"] and state["dirpath"] == job.checkpoint.dirpath:
                job.best_path, job.best_value = state["best_model_path"], float(state["best_model_score"])
                job.last_path = state["last_model_path"]


class JobCheckpointIO(DurableCheckpointIO):
    """The pack trainer's checkpoint writer: a checkpoint saved to a path in the first job's directory (by
    ``PeriodicCheckpoint`` or ``Preemption``, which run as the first job's) is cut into each job's own and
    written at the same path in each job's directory. A job its guard stopped keeps its last good one."""

    def __init__(self, jobs: list[PackJob], files: list[JobFiles], module: PackedVAE) -> None:
        super().__init__()
        self.jobs, self.files, self.module = jobs, files, module

    def within(self, path) -> Path:
        """``path`` relative to the first job's directory, or one line: a pack saves nowhere else."""
        first = self.jobs[0].output_dir.resolve()
        if not Path(path).resolve().is_relative_to(first):
            raise VaeZooError(
                f"a pack writes each job's checkpoints in its own directory, and {path} is outside the first "
                f"job's ({first}) -- keep callbacks.periodic_checkpoint.dirpath and callbacks.preemption.dirpath "
                "under ${paths.output_dir}"
            )
        return Path(path).resolve().relative_to(first)

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any = None) -> None:
        within = self.within(path)
        for n, (job, files) in enumerate(zip(self.jobs, self.files)):
            if self.module.done(n):
                continue
            target = job.output_dir / within
            super().save_checkpoint(job_checkpoint(checkpoint, self.module, n, files.run), target)
            if target.name == f"{ModelCheckpoint.CHECKPOINT_NAME_LAST}.ckpt":
                files.last_path = self.module.last_good[n] = str(target)
