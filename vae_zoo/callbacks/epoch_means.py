"""Epoch means of the training loss and every term the objective names: ``train/<name>_epoch``."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch


class EpochMeans(pl.Callback):
    """Image-weighted means over an epoch's trained batches of ``loss`` and each of the objective's terms,
    logged as ``train/<name>_epoch`` at the epoch's end. The sums stay on the device (one ``add_`` per
    step, no host synchronization); a batch the non-finite guard skipped is left out (its step output
    cleared, or, deferred, weighted by a device-side count of 0). The sums are
    checkpointed, so a run resumed mid-epoch reports the uninterrupted run's epoch means. The model
    adds this callback.
    """

    def __init__(self) -> None:
        self.names: list[str] = []
        self.sums: torch.Tensor | None = None
        self.images = 0
        self.epoch = 0
        self._restored: dict[str, Any] | None = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.sums, self.images, self.epoch = None, 0, trainer.current_epoch

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx
    ) -> None:
        state, self._restored = self._restored, None
        if state is not None and state["epoch"] == trainer.current_epoch and state["sums"] is not None:
            self.names, self.images = state["names"], state["images"]
            self.sums = state["sums"].to(pl_module.device)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx
    ) -> None:
        step = pl_module.step_output
        if step is None:
            return
        values = (
            torch.stack([step.loss, *step.terms.values()]) * step.images
        )  # images: int, or a device count
        if self.sums is None:
            self.names, self.sums = ["loss", *step.terms], values
        else:
            self.sums.add_(values)
        self.images += step.images

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.sums is None:
            return
        means = self.sums / self.images
        pl_module.log_dict(
            {f"train/{name}_epoch": mean for name, mean in zip(self.names, means)}, sync_dist=True
        )

    def state_dict(self) -> dict[str, Any]:
        sums = self.sums.cpu() if self.sums is not None else None
        return {"epoch": self.epoch, "names": self.names, "sums": sums, "images": int(self.images)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._restored = state_dict
