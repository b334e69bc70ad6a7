"""Each job's diagnostics in a pack: its image grids and gradient variance, drawn from its own model (its
weights and state at that step, in its unpacked module) into its own loggers, when its own callback would
draw them in an unpacked run."""

from __future__ import annotations

from collections.abc import Sequence

import pytorch_lightning as pl
from torch import Tensor

from vae_zoo.callbacks.gradient_variance import GradientVariance
from vae_zoo.callbacks.image_grids import ImageGrids
from vae_zoo.models.vae import VAE
from vae_zoo.packing.job_outputs import JobFiles
from vae_zoo.packing.pack import unpacked_state_dict
from vae_zoo.packing.packed_vae import PackedVAE
from vae_zoo.packing.per_model_settings import SCHEDULES, PerModelSettings


def job_view(module: PackedVAE, n: int, settings: PerModelSettings) -> VAE:
    """Job ``n``'s unpacked module holding its model's weights and state of this step, and this step's KL
    weight, capacity and temperature where its schedule sets them, on the pack's device."""
    run = module.runs[n].to(module.device)
    run.model.load_state_dict(unpacked_state_dict(module.model, n))
    for kind in SCHEDULES:
        if kind.logged_as in settings.values:
            setattr(run.objective, kind.setting, settings.values[kind.logged_as][n])
    if "temperature" in settings.values:
        run.model.estimator.temperature = settings.values["temperature"][n]
    return run


class JobDiagnostics(pl.Callback):
    """Every job's ``ImageGrids`` (after each validation epoch) and ``GradientVariance`` (before each training
    step), each with its own settings, on that job's view (``job_view``), its data module and its loggers."""

    def __init__(
        self,
        callbacks: Sequence[Sequence[pl.Callback]],
        datamodules: Sequence[pl.LightningDataModule],
        files: Sequence[JobFiles],
        settings: PerModelSettings,
    ) -> None:
        self.callbacks, self.datamodules, self.files = list(callbacks), list(datamodules), list(files)
        self.settings = settings

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: PackedVAE) -> None:
        self._draw(trainer, pl_module, ImageGrids)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: PackedVAE, batch: Tensor, batch_idx: int):
        self._draw(trainer, pl_module, GradientVariance)

    def _draw(self, trainer: pl.Trainer, module: PackedVAE, kind: type) -> None:
        for n, (callbacks, datamodule, files) in enumerate(zip(self.callbacks, self.datamodules, self.files)):
            due = [c for c in callbacks if isinstance(c, kind) and c.due(trainer, files.loggers)]
            if due and not module.done(n):
                run = job_view(module, n, self.settings)
                for callback in due:
                    callback.draw(trainer, run, datamodule, files.loggers)
