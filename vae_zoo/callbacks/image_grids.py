"""Reconstruction and prior-sample image grids, written to every tracker that takes images."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torchvision.utils import make_grid

from vae_zoo.trackers import log_image


class ImageGrids(pl.Callback):
    """Every ``every_n_epochs`` validation epochs: ``images/reconstructions`` (rows of ``per_row``
    validation inputs, each followed by the row of their reconstructions) and ``images/samples``
    (decoded draws from the prior; a conditional model's: one row of ``per_row`` per class), clamped to
    [0, 1] (a Gaussian's mean may leave it)."""

    def __init__(self, every_n_epochs: int = 1, num_images: int = 32, per_row: int = 8) -> None:
        self.every_n_epochs = every_n_epochs
        self.num_images = num_images
        self.per_row = per_row

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.due(trainer, trainer.loggers):
            self.draw(trainer, pl_module, trainer.datamodule, trainer.loggers)

    def due(self, trainer: pl.Trainer, loggers: list) -> bool:
        """Whether this validation epoch draws (not a sanity check; every ``every_n_epochs``; a logger)."""
        return (
            bool(loggers) and not trainer.sanity_checking and trainer.current_epoch % self.every_n_epochs == 0
        )

    def draw(self, trainer: pl.Trainer, pl_module: pl.LightningModule, datamodule, loggers: list) -> None:
        """The grids of ``pl_module``'s model on ``datamodule``'s validation images, to ``loggers`` at the
        trainer's step (a pack draws each job's: ``vae_zoo.packing.job_diagnostics``)."""
        model, device = pl_module.model, pl_module.device
        x = datamodule.sample_images("val", self.num_images).to(device)
        conditional = model.condition is not None
        y = datamodule.sample_labels("val", self.num_images).to(device) if conditional else None
        reconstructions = model.reconstruct(x, y)
        rows = torch.cat(
            [row for pair in zip(x.split(self.per_row), reconstructions.split(self.per_row)) for row in pair]
        )
        if conditional:
            classes = torch.arange(model.condition.classes, device=device).repeat_interleave(self.per_row)
            samples = model.generate(len(classes), classes)
        else:
            samples = model.generate(self.num_images)
        grids = {
            "images/reconstructions": make_grid(rows, nrow=self.per_row, pad_value=1.0),
            "images/samples": make_grid(samples, nrow=self.per_row, pad_value=1.0),
        }
        for logger in loggers:
            for tag, grid in grids.items():
                log_image(logger, tag, grid.float().clamp(0, 1).cpu(), trainer.global_step)
