"""Lightning's ``ModelCheckpoint`` with ``last.ckpt`` written at every save point, as before Lightning 2.6.

Lightning 2.6 writes ``last.ckpt`` only at a step where it also saved a top-k checkpoint: with ``save_top_k=1``
a validation that does not improve the monitored metric leaves ``last.ckpt`` at the best epoch, so
``ckpt_path=last`` would resume from there and train those epochs again. Here, wherever the callback would
save (the end of each training epoch whose validation ran, or each validation), ``last.ckpt`` holds that step.
"""

from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint


class BestAndLastCheckpoint(ModelCheckpoint):
    """The best checkpoints by the monitored metric, and ``last.ckpt`` at every save point."""

    @property
    def state_key(self) -> str:
        """Lightning's ``ModelCheckpoint`` key, so that a checkpoint written with that class (before this one
        was the default) resumes its record of the best, and Lightning's class reads this one's."""
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_not_yet(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_not_yet(trainer)

    def _save_last_if_not_yet(self, trainer: pl.Trainer) -> None:
        """``last.ckpt`` at this step, unless a checkpoint was saved at it already (then with ``last.ckpt``)."""
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
