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
from vae_zoo.callbacks.temperature_annealing import TemperatureAnnealing
from vae_zoo.models.vae import VAE


def per_model(values: Sequence[float], device: torch.device) -> float | Tensor:
    """One value if all models share it, else model ``n``'s value at ``n``."""
    if len(set(values)) == 1:
        return values[0]
    return torch.tensor(values, device=device)


class PerModelSettings(pl.Callback):
    """Each job's own KL warm-up, capacity increase and temperature annealing (None where it has none), evaluated
    per model; its ``beta``, ``capacity`` and ``temperature`` otherwise. ``values`` holds this step's per-model
    values of those a job schedules (``kl_weight``, ``capacity``, ``temperature``), which each job logs."""

    def __init__(
        self,
        runs: Sequence[VAE],
        warmups: Sequence[KLWarmup | None],
        annealings: Sequence[TemperatureAnnealing | None],
        increases: Sequence[CapacityIncrease | None] | None = None,
    ) -> None:
        self.warmups, self.annealings = list(warmups), list(annealings)
        self.increases = list(increases or [None] * len(runs))
        self.betas = [run.objective.beta for run in runs]  # each job's own, before any step sets the pack's
        self.capacities = [getattr(run.objective, "capacity", None) for run in runs]
        self.temperatures = [run.model.estimator.temperature for run in runs]
        # the objective's other settings of each job (semi-supervised's alpha), constant through training
        self.objective_settings = {
            name: [getattr(run.objective, name) for run in runs]
            for name in runs[0].objective.per_model_settings
        }
        self.values: dict[str, list[float]] = {}

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for schedule in filter(None, [*self.warmups, *self.increases]):
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
        if pl_module.objective.beta is not None:
            betas = [
                warmup.kl_weight(step) if warmup else beta for warmup, beta in zip(self.warmups, self.betas)
            ]
            pl_module.objective.beta = per_model(betas, device)
            if any(self.warmups):
                self.values["kl_weight"] = betas
        if self.capacities[0] is not None:
            capacities = [
                increase.value(step) if increase else capacity
                for increase, capacity in zip(self.increases, self.capacities)
            ]
            pl_module.objective.capacity = per_model(capacities, device)
            if any(self.increases):
                self.values["capacity"] = capacities
        if pl_module.model.estimator.temperature is not None:
            active = [a if a is not None and a.active else None for a in self.annealings]
            taus = [
                annealing.temperature(step) if annealing else tau
                for annealing, tau in zip(active, self.temperatures)
            ]
            pl_module.model.estimator.temperature = per_model(taus, device)
            if any(active):
                self.values["temperature"] = taus
