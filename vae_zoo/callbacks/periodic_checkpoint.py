"""Mid-epoch ``last.ckpt`` every few minutes or steps: a crash without warning (kill -9, the OOM killer, a
dead node) then costs at most that much training."""

from __future__ import annotations

from pathlib import Path
from time import monotonic

import pytorch_lightning as pl


class PeriodicCheckpoint(pl.Callback):
    """After a training batch, saves the full exact-resume state (weights, optimizer, schedulers, loop
    position, RNG states) to ``<dirpath>/<filename>`` when ``every_minutes`` have passed since the last
    save or the start (0: off), or every ``every_n_train_steps`` optimizer steps (0: off); the best-epoch
    checkpoints are ``ModelCheckpoint``'s, unchanged. ``ckpt_path=last`` resumes from the newest save."""

    #: a pack runs it once for all its jobs (``vae_zoo.packing``)
    pack_wide = True

    def __init__(
        self,
        dirpath: str,
        every_minutes: float = 10,
        every_n_train_steps: int = 0,
        filename: str = "last.ckpt",
    ) -> None:
        self.path = Path(dirpath) / filename
        self.every_seconds = every_minutes * 60
        self.every_n_train_steps = every_n_train_steps
        self._last_save = monotonic()
        self._saved_step = -1

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last_save = monotonic()

    def _due(self, trainer: pl.Trainer) -> bool:
        step = trainer.global_step
        if step == self._saved_step:  # gradient accumulation: no optimizer step since the last save
            return False
        by_steps = self.every_n_train_steps > 0 and step % self.every_n_train_steps == 0
        by_time = self.every_seconds > 0 and monotonic() - self._last_save >= self.every_seconds
        due = by_steps or by_time
        return trainer.strategy.broadcast(due) if trainer.world_size > 1 else due  # every rank saves together

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx
    ) -> None:
        if trainer.sanity_checking or not self._due(trainer):
            return
        trainer.save_checkpoint(self.path)
        self._last_save = monotonic()
        self._saved_step = trainer.global_step
