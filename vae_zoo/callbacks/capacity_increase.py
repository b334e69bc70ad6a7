"""The KL capacity raised from 0 over the first steps (Burgess et al. 2018's capacity-controlled beta-VAE)."""

from __future__ import annotations

import pytorch_lightning as pl

from vae_zoo.callbacks.objective_schedule import ObjectiveSchedule
from vae_zoo.errors import ConfigError


class CapacityIncrease(ObjectiveSchedule):
    """Sets the objective's capacity ``C = capacity * min(1, step / steps)`` every step, the KL in nats that
    ``objective.capacity_weight`` trains towards; logs ``train/capacity``. Burgess et al. raise it linearly so that
    the code takes on information a little at a time (25 nats over 100,000 steps on dSprites). Like the KL
    warm-up, a function of the global step, so a resumed run continues it exactly."""

    setting, logged_as = "capacity", "capacity"

    def __init__(self, capacity: float = 25.0, steps: int = 100_000) -> None:
        if not capacity >= 0 or steps < 1:
            raise ConfigError(
                f"callbacks.capacity.capacity={capacity} must be >= 0 (nats) and callbacks.capacity.steps={steps} "
                ">= 1"
            )
        self.capacity, self.steps = float(capacity), steps

    def value(self, step: int) -> float:
        return self.capacity * min(1.0, step / self.steps)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not getattr(pl_module.objective, "capacity_weight", 0):
            raise ConfigError(
                "callbacks.capacity raises the KL capacity that objective.capacity_weight trains towards, and this "
                "objective trains none -- set objective.capacity_weight (e.g. 1000), or drop the callback"
            )
