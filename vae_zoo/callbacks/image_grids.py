"""Reconstruction and prior-sample image grids, written to every tracker that takes images."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torchvision.utils import make_grid

from vae_zoo.trackers import log_image


class ImageGrids(pl.Callback):
    """Every ``every_n_epochs`` validation epochs: ``images/reconstructions`` (rows of ``per_row``
    validation inputs, each followed by the row of their reconstructions) and ``images/samples``
    (decoded draws from the prior), clamped to [0, 1] (a Gaussian's mean may leave it)."""

    def __init__(self, every_n_epochs: int = 1, num_images: int = 32, per_row: int = 8) -> None:
        self.every_n_epochs = every_n_epochs
        self.num_images = num_images
        self.per_row = per_row

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.loggers or trainer.current_epoch % self.every_n_epochs:
            return
        x = trainer.datamodule.sample_images("val", self.num_images).to(pl_module.device)
        reconstructions = pl_module.model.reconstruct(x)
        rows = torch.cat(
            [row for pair in zip(x.split(self.per_row), reconstructions.split(self.per_row)) for row in pair]
        )
        grids = {
            "images/reconstructions": make_grid(rows, nrow=self.per_row, pad_value=1.0),
            "images/samples": make_grid(
                pl_module.model.generate(self.num_images), nrow=self.per_row, pad_value=1.0
            ),
        }
        for logger in trainer.loggers:
            for tag, grid in grids.items():
                log_image(logger, tag, grid.float().clamp(0, 1).cpu(), trainer.global_step)
