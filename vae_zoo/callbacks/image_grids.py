"""Reconstruction and prior-sample image grids, written to every logger that takes images."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torchvision.utils import make_grid


class ImageGrids(pl.Callback):
    """Every ``every_n_epochs`` validation epochs: ``images/reconstructions`` (rows of ``per_row``
    validation inputs, each followed by the row of their reconstructions) and ``images/samples``
    (decoded draws from the prior), clamped to [0, 1] (a Gaussian's mean may leave it)."""

    def __init__(self, every_n_epochs: int = 1, num_images: int = 32, per_row: int = 8) -> None:
        self.every_n_epochs = every_n_epochs
        self.num_images = num_images
        self.per_row = per_row

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        writers = [lg.experiment for lg in trainer.loggers if hasattr(lg.experiment, "add_image")]
        if trainer.sanity_checking or not writers or trainer.current_epoch % self.every_n_epochs:
            return
        x = trainer.datamodule.sample_images("val", self.num_images).to(pl_module.device)
        reconstructions = pl_module.reconstruct(x)
        rows = torch.cat(
            [row for pair in zip(x.split(self.per_row), reconstructions.split(self.per_row)) for row in pair]
        )
        grids = {
            "images/reconstructions": make_grid(rows, nrow=self.per_row, pad_value=1.0),
            "images/samples": make_grid(
                pl_module.generate(self.num_images), nrow=self.per_row, pad_value=1.0
            ),
        }
        for writer in writers:
            for tag, grid in grids.items():
                writer.add_image(tag, grid.float().clamp(0, 1).cpu(), global_step=trainer.global_step)
