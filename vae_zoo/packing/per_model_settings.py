"""The settings each model of a pack has its own of, set every step: the KL weight (``objective.beta``, or its
warm-up's ``min(1, step / steps)``), the KL capacity (``objective.capacity``, or its increase's at the step) and the
relaxation's temperature (``model.estimator.temperature``, or its annealing schedule's tau at the step); and once,
the objective's own (``Objective.per_model_settings``).

Where the models agree the shared module gets the number itself, as an unpacked run does; where they differ,
one value per model, which the objective's per-image terms and the relaxations spread over each model's rows
(``vae_zoo.packed_batch.per_image``: a computation may have several rows per image).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytorch_lightning as pl
import torch
from torch import Tensor

from vae_zoo.callbacks.capacity_increase import CapacityIncrease
from vae_zoo.callbacks.kl_warmup import KLWarmup
from vae_zoo.callbacks.objective_schedule import ObjectiveSchedule
from vae_zoo.callbacks.temperature_annealing import TemperatureAnnealing
from vae_zoo.models.vae import VAE

#: the schedules of an objective's setting that each job of a pack may have its own of
SCHEDULES: tuple[type[ObjectiveSchedule], ...] = (KLWarmup, CapacityIncrease)


def of_type(callbacks: Sequence[pl.Callback], kind: type) -> pl.Callback | None:
    """The first of ``callbacks`` that is a ``kind``, else None."""
    return next((callback for callback in callbacks if isinstance(callback, kind)), None)


def per_model(values: Sequence[float], device: torch.device) -> float | Tensor:
    """One value if all models share it, else model ``n``'s value at ``n``."""
    if len(set(values)) == 1:
        return values[0]
    return torch.tensor(values, device=device)


class PerModelSettings(pl.Callback):
    """Each job's own schedules of the objective's settings (``SCHEDULES``: the KL warm-up's ``beta``, the capacity
    increase's ``capacity``) and its temperature annealing, found among its ``callbacks`` and evaluated per model;
    where a job has none, its own ``beta``, ``capacity`` and ``temperature``. ``values`` holds this step's per-model
    values of those a job schedules (``kl_weight``, ``capacity``, ``temperature``), which each job logs."""

    def __init__(self, runs: Sequence[VAE], callbacks: Sequence[Sequence[pl.Callback]]) -> None:
        self.schedules = {kind: [of_type(own, kind) for own in callbacks] for kind in SCHEDULES}
        self.annealings = [of_type(own, TemperatureAnnealing) for own in callbacks]
        # each job's own settings, before any step sets the pack's (None: its objective has no such setting)
        self.own = {kind: [getattr(run.objective, kind.setting, None) for run in runs] for kind in SCHEDULES}
        self.temperatures = [run.model.estimator.temperature for run in runs]
        # the objective's other settings of each job (semi-supervised's alpha), constant through training
        self.objective_settings = {
            name: [getattr(run.objective, name) for run in runs]
            for name in runs[0].objective.per_model_settings
        }
        self.values: dict[str, list[float]] = {}

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for schedule in filter(None, [s for schedules in self.schedules.values() for s in schedules]):
            schedule.setup(trainer, pl_module, stage)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for name, values in self.objective_settings.items():
            setattr(pl_module.objective, name, per_model(values, pl_module.device))
        annealings = [a for a in self.annealings if a is not None]
        for n, annealing in enumerate(annealings):
            if n == 0:  # says once where the estimator has no temperature
                annealing.on_fit_start(trainer, pl_module)
            annealing.active = annealings[0].active

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for annealing in filter(None, self.annealings):
            annealing.on_train_start(trainer, pl_module)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module, batch: Tensor, batch_idx: int) -> None:
        step, device = trainer.global_step, pl_module.device
        self.values = {}
        for kind, schedules in self.schedules.items():
            own = self.own[kind]
            if own[0] is None:
                continue
            values = [schedule.value(step) if schedule else v for schedule, v in zip(schedules, own)]
            setattr(pl_module.objective, kind.setting, per_model(values, device))
            if any(schedules):
                self.values[kind.logged_as] = values
        if pl_module.model.estimator.temperature is not None:
            active = [a if a is not None and a.active else None for a in self.annealings]
            taus = [
                annealing.temperature(step) if annealing else tau
                for annealing, tau in zip(active, self.temperatures)
            ]
            pl_module.model.estimator.temperature = per_model(taus, device)
            if any(active):
                self.values["temperature"] = taus
