"""KL warm-up (annealing): beta rising from 0 to 1 over the first steps (Bowman et al. 2016; Sonderby et al. 2016),
once or in cycles (Fu et al. 2019)."""

from __future__ import annotations

import pytorch_lightning as pl

from vae_zoo.callbacks.logging_steps import is_logging_step
from vae_zoo.errors import ConfigError


class KLWarmup(pl.Callback):
    """Sets the objective's KL weight ``beta = min(1, step / steps)`` every step; logs ``train/kl_weight``. With a
    ``period``, cyclical annealing (Fu et al. 2019): ``beta = min(1, (step mod period) / steps)``, rising over
    ``steps`` and held at 1 for the rest of each cycle of ``period`` steps (Fu et al.'s ``R = steps / period``).

    Needs an objective with a KL weight (``objective=elbo``: its ``beta``). The reported terms
    (``train/elbo``, every validation/test metric) stay the true negative ELBO; ``train/loss`` is the
    weighted loss being minimised. Like the temperature, beta is a function of the global step, so a
    resumed run continues it exactly.
    """

    def __init__(self, steps: int = 30_000, period: int | None = None) -> None:
        if steps < 1:
            raise ConfigError(f"callbacks.kl_warmup.steps={steps} must be >= 1")
        if period is not None and period < steps:
            raise ConfigError(
                f"callbacks.kl_warmup.period={period} must be >= callbacks.kl_warmup.steps={steps}: each cycle "
                "rises over steps, then holds beta = 1 (or set period=null: one warm-up)"
            )
        self.steps, self.period = steps, period

    def kl_weight(self, step: int) -> float:
        return min(1.0, (step if self.period is None else step % self.period) / self.steps)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if pl_module.objective.beta is None:
            raise ConfigError(
                f"callbacks.kl_warmup needs an objective with a KL weight (objective=elbo); "
                f"{type(pl_module.objective).__name__} has none -- drop the callback"
            )

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int
    ) -> None:
        pl_module.objective.beta = self.kl_weight(trainer.global_step)
        if is_logging_step(trainer):
            pl_module.log("train/kl_weight", pl_module.objective.beta)
