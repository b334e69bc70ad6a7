"""A setting of the objective that a schedule sets from the global step before every training step."""

from __future__ import annotations

from abc import ABC, abstractmethod

import pytorch_lightning as pl

from vae_zoo.callbacks.logging_steps import is_logging_step


class ObjectiveSchedule(pl.Callback, ABC):
    """Sets ``objective.<setting> = value(step)`` before every training step and logs it as
    ``train/<logged_as>``. A function of the global step, so a resumed run continues it exactly; in a pack each
    job's own schedule sets its own model's value (``vae_zoo.packing.per_model_settings``)."""

    #: the objective's attribute it sets
    setting: str
    #: the name it is logged under, ``train/<logged_as>``
    logged_as: str

    @abstractmethod
    def value(self, step: int) -> float:
        """The setting's value at global step ``step``."""

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int
    ) -> None:
        setattr(pl_module.objective, self.setting, self.value(trainer.global_step))
        if is_logging_step(trainer):
            pl_module.log(f"train/{self.logged_as}", getattr(pl_module.objective, self.setting))
