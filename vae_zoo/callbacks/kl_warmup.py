"""KL warm-up (annealing): beta rising from 0 to 1 over the first steps (Bowman et al. 2016; Sonderby et al. 2016)."""

from __future__ import annotations

import pytorch_lightning as pl

from vae_zoo.errors import ConfigError


class KLWarmup(pl.Callback):
    """Trains on ``-log p(x|z) + beta * KL`` with ``beta = min(1, step / steps)``; logs ``train/kl_weight``.

    ``train/loss`` and every validation/test metric stay the true negative ELBO (beta = 1). Like the
    temperature, beta is a function of the global step, so a resumed run continues it exactly.
    """

    def __init__(self, steps: int = 30_000) -> None:
        if steps < 1:
            raise ConfigError(f"callbacks.kl_warmup.steps={steps} must be >= 1")
        self.steps = steps

    def kl_weight(self, step: int) -> float:
        return min(1.0, step / self.steps)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int
    ) -> None:
        pl_module.kl_weight = self.kl_weight(trainer.global_step)
        if pl_module.is_logging_step():
            pl_module.log("train/kl_weight", pl_module.kl_weight)
