"""Lightning's TQDM progress bar without its ``v_num`` field (the logger's version: here the run's name,
which the bar would cut to its last four characters)."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar


class ProgressBar(TQDMProgressBar):
    #: a pack runs it once for all its jobs (``vae_zoo.packing``)
    pack_wide = True

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics
