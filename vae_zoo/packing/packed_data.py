"""The batches of N packed models: each model's own batch (its seed's order and binarization), in turn."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from vae_zoo.data.tensor_batches import TensorBatches


class PackedBatches:
    """One batch per step: the N models' batches concatenated, model ``n``'s images at rows ``n*B:(n+1)*B``.
    Model ``n``'s batch is the one its unpacked run would see at that step."""

    def __init__(self, batches: Sequence[TensorBatches]) -> None:
        self.batches = list(batches)

    def __len__(self) -> int:
        return len(self.batches[0])

    def __iter__(self) -> Iterator[Tensor | tuple[Tensor, Tensor]]:
        for parts in zip(*self.batches, strict=True):
            # labelled batches (a conditional model's): the images and the labels each concatenated
            yield tuple(map(torch.cat, zip(*parts))) if isinstance(parts[0], tuple) else torch.cat(parts)

    def state_dict(self) -> dict[str, Any]:
        return {"models": [batches.state_dict() for batches in self.batches]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for batches, own in zip(self.batches, state["models"], strict=True):
            batches.load_state_dict(own)


class PackedDataModule(pl.LightningDataModule):
    """The N jobs' data modules (one dataset, their seeds), the images read once and shared."""

    def __init__(self, datamodules: Sequence[pl.LightningDataModule]) -> None:
        super().__init__()
        self.datamodules = list(datamodules)

    def setup(self, stage: str | None = None) -> None:
        first = self.datamodules[0]
        for datamodule in self.datamodules:
            datamodule.trainer = self.trainer
        first.setup(stage)
        for datamodule in self.datamodules[1:]:
            datamodule.share(first)

    @property
    def training_images(self) -> int:
        """Images in the training split the jobs share (after ``setup``)."""
        return self.datamodules[0].training_images

    def train_dataloader(self) -> PackedBatches:
        return PackedBatches([datamodule.train_dataloader() for datamodule in self.datamodules])

    def val_dataloader(self) -> PackedBatches:
        return PackedBatches([datamodule.val_dataloader() for datamodule in self.datamodules])

    def test_dataloader(self) -> PackedBatches:
        return PackedBatches([datamodule.test_dataloader() for datamodule in self.datamodules])
