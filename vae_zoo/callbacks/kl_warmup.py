"""KL warm-up (annealing): beta rising from 0 to 1 over the first steps (Bowman et al. 2016; Sonderby et al. 2016),
once or in cycles (Fu et al. 2019)."""

from __future__ import annotations

import pytorch_lightning as pl

from vae_zoo.callbacks.objective_schedule import ObjectiveSchedule
from vae_zoo.errors import ConfigError


class KLWarmup(ObjectiveSchedule):
    """Sets the objective's KL weight ``beta = min(1, step / steps)`` every step; logs ``train/kl_weight``. With a
    ``period``, cyclical annealing (Fu et al. 2019): ``beta = min(1, (step mod period) / steps)``, rising over
    ``steps`` and held at 1 for the rest of each cycle of ``period`` steps (Fu et al.'s ``R = steps / period``).

    Needs an objective with a KL weight (``objective=elbo``: its ``beta``). The reported terms
    (``train/elbo``, every validation/test metric) stay the true negative ELBO; ``train/loss`` is the
    weighted loss being minimised. Like the temperature, beta is a function of the global step, so a
    resumed run continues it exactly.
    """

    setting, logged_as = "beta", "kl_weight"

    def __init__(self, steps: int = 30_000, period: int | None = None) -> None:
        if steps < 1:
            raise ConfigError(f"callbacks.kl_warmup.steps={steps} must be >= 1")
        if period is not None and period < steps:
            raise ConfigError(
                f"callbacks.kl_warmup.period={period} must be >= callbacks.kl_warmup.steps={steps}: each cycle "
                "rises over steps, then holds beta = 1 (or set period=null: one warm-up)"
            )
        self.steps, self.period = steps, period

    def value(self, step: int) -> float:
        return min(1.0, (step if self.period is None else step % self.period) / self.steps)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if pl_module.objective.beta is None:
            raise ConfigError(
                f"callbacks.kl_warmup needs an objective with a KL weight (objective=elbo); "
                f"{type(pl_module.objective).__name__} has none -- drop the callback"
            )
