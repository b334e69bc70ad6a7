"""Annealing the temperature of relaxed categorical estimators (Jang et al. 2016)."""

from __future__ import annotations

import math

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_info

from vae_zoo.callbacks.logging_steps import is_logging_step
from vae_zoo.config_groups import option_name
from vae_zoo.errors import ConfigError

SCHEDULES = ("exponential", "linear", "cosine", "constant")


class TemperatureAnnealing(pl.Callback):
    """Sets ``estimator.temperature`` from the global step ``s``, re-evaluated every N steps
    (``s_N = N * floor(s / N)``):

        exponential  tau = max(tau_min, tau0 * exp(-rate * s_N))                                (the paper's)
        linear       tau = tau0 - (tau0 - tau_min) * min(1, s_N / anneal_steps)
        cosine       tau = tau_min + (tau0 - tau_min) * (1 + cos(pi * min(1, s_N / anneal_steps))) / 2
        constant     tau = tau0

    tau depends on the step alone, so a resumed run has the temperature an uninterrupted run has at every
    step with nothing extra in the checkpoint. ``anneal_steps`` (linear, cosine) defaults to the run's
    total number of optimizer steps. Logs ``train/temperature``. With an estimator that has no
    temperature (``score_function``) it does nothing, and says so once.
    """

    def __init__(
        self,
        schedule: str = "exponential",
        tau0: float = 1.0,
        tau_min: float = 0.5,
        rate: float = 3e-5,
        every_n_steps: int = 1000,
        anneal_steps: int | None = None,
    ) -> None:
        where = "callbacks.temperature"
        if schedule not in SCHEDULES:
            raise ConfigError(f"{where}.schedule={schedule!r} is not one of {', '.join(SCHEDULES)}")
        if tau_min <= 0:
            raise ConfigError(f"{where}.tau_min={tau_min} must be > 0 (the softmax divides by tau)")
        if tau0 < tau_min:
            raise ConfigError(f"{where}.tau0={tau0} must be >= {where}.tau_min={tau_min}")
        if every_n_steps < 1:
            raise ConfigError(f"{where}.every_n_steps={every_n_steps} must be >= 1")
        if rate < 0:
            raise ConfigError(f"{where}.rate={rate} must be >= 0")
        if anneal_steps is not None and anneal_steps < 1:
            raise ConfigError(f"{where}.anneal_steps={anneal_steps} must be >= 1 (or null: the whole run)")
        self.schedule = schedule
        self.tau0, self.tau_min, self.rate = tau0, tau_min, rate
        self.every_n_steps = every_n_steps
        self.anneal_steps = anneal_steps

    def temperature(self, step: int) -> float:
        """tau at global step ``step``."""
        s = (step // self.every_n_steps) * self.every_n_steps
        if self.schedule == "exponential":
            return max(self.tau_min, self.tau0 * math.exp(-self.rate * s))
        if self.schedule == "constant":
            return self.tau0
        progress = min(1.0, s / self.anneal_steps)
        if self.schedule == "linear":
            return self.tau0 - (self.tau0 - self.tau_min) * progress
        return self.tau_min + (self.tau0 - self.tau_min) * (1 + math.cos(math.pi * progress)) / 2

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.active = pl_module.model.estimator.temperature is not None
        if not self.active:
            rank_zero_info(
                f"callbacks.temperature: {option_name('estimator', pl_module.model.estimator)} has no temperature to anneal"
            )

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.active and self.anneal_steps is None and self.schedule in ("linear", "cosine"):
            total = trainer.estimated_stepping_batches
            if not math.isfinite(total):
                raise ConfigError(
                    "callbacks.temperature.anneal_steps must be set when the run has no step limit"
                )
            self.anneal_steps = max(1, int(total))

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int
    ) -> None:
        if not self.active:
            return
        tau = self.temperature(trainer.global_step)
        pl_module.model.estimator.temperature = tau
        if is_logging_step(trainer):
            pl_module.log("train/temperature", tau)
