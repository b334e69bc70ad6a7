"""Weight averaging: an exponential moving average of the weights, for evaluation and checkpoints."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import EMAWeightAveraging

from vae_zoo.errors import ConfigError


class ExponentialMovingAverage(EMAWeightAveraging):
    """Lightning's EMA weight averaging (``torch.optim.swa_utils.AveragedModel``): after every
    ``update_every_n_steps``-th optimizer step from ``update_starting_at_step`` on,

        w_ema <- decay * w_ema + (1 - decay) * w        (the first update copies w),

    over the parameters and buffers. Validation runs on the averaged weights, checkpoints hold them as their
    ``state_dict`` (so ``eval.py``, ``sample.py`` and ``vae_zoo.load`` use them) with the trained weights and the
    average's own state beside them, and ``ckpt_path=`` resumes both exactly. The final validation and test
    on the best checkpoint evaluate the averaged weights."""

    #: a pack runs it once for all its jobs: the average of the stacked weights is each model's average
    pack_wide = True

    def __init__(
        self, decay: float = 0.999, update_every_n_steps: int = 1, update_starting_at_step: int | None = None
    ) -> None:
        if not 0 < decay < 1 or update_every_n_steps < 1:
            raise ConfigError(
                f"callbacks.ema.decay={decay} must be in (0, 1) and update_every_n_steps={update_every_n_steps} >= 1"
            )
        super().__init__(
            decay=decay,
            update_every_n_steps=update_every_n_steps,
            update_starting_at_step=update_starting_at_step,
        )
        self.decay = decay

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Resuming: the average and the trained weights each from their own entry. The module's
        ``state_dict`` is its model's (``VAE.state_dict``), which Lightning's prefixed reload misses; outside
        fitting a checkpoint's ``state_dict``, the averaged weights, is all there is to read."""
        if trainer.state.fn != "fit":
            return
        if self._average_model is None or "averaging_state" not in checkpoint:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
            return
        self._average_model.module.load_state_dict(checkpoint["state_dict"])
        for name, value in checkpoint["averaging_state"].items():  # the number of updates so far
            self._average_model.get_buffer(name).copy_(value)
        pl_module.load_state_dict(checkpoint["current_model_state"])
