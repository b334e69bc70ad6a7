"""Each job's early stopping in a pack: its own ``EarlyStopping`` (Lightning's, from its
``callbacks.early_stopping``) checked on its own model's values after each validation, before the job's
checkpoints of that validation are written. (Lightning checks an unpacked run at the end of the training epoch
whose validation just ran, or after each validation when it runs within epochs: on the same values, and
before its checkpoints are saved.)

A model that stops trains no further: its optimizer steps no more, its job writes no more values or
checkpoints, and its ``metrics.json`` records the epoch and step it stopped at, from its weights of that moment
(``Stopped``). The pack stops when every model has stopped or failed. Each stopper's state travels in its
job's checkpoints under its own key, as an unpacked run's does (``job_callbacks``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping
from pytorch_lightning.trainer.states import TrainerFn

from vae_zoo.packing.job_checkpoints import JOB_CALLBACKS, STOPPED_EARLY, model_part
from vae_zoo.packing.packed_vae import PackedVAE, Stopped


class PerModelEarlyStopping(pl.Callback):
    """``stoppers``: each job's ``EarlyStopping``, None where it has none; ``names``: the jobs' directories, for
    the line a stop prints."""

    def __init__(self, stoppers: Sequence[EarlyStopping | None], names: Sequence[str]) -> None:
        self.stoppers, self.names = list(stoppers), list(names)

    def on_validation_end(self, trainer: pl.Trainer, module: PackedVAE) -> None:
        """Each running model's stopper on its own values of this validation, as ``EarlyStopping`` checks one."""
        if trainer.state.fn != TrainerFn.FITTING or trainer.sanity_checking or trainer.fast_dev_run:
            return
        for n, stopper in enumerate(self.stoppers):
            if stopper is None or module.done(n):
                continue
            value = module.metrics["val"][n][stopper.monitor]  # a metric it validates (checked when built)
            should_stop, reason = stopper._evaluate_stopping_criteria(torch.tensor(value))
            if should_stop:  # recorded as Lightning records it, before it looks at min_epochs
                stopper.stopped_epoch, stopper.stopping_reason_message = trainer.current_epoch, reason
            if should_stop and self._may_stop(trainer):
                # its weights as its checkpoint would hold them now (with weight averaging, the average)
                dump = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
                weights = model_part(dump["state_dict"], n)
                module.stopped[n] = Stopped(trainer.current_epoch + 1, trainer.global_step, weights)
                line = f"packed: {self.names[n]} stops early after epoch {trainer.current_epoch}: {reason}"
                bar = trainer.progress_bar_callback  # (its print keeps the line apart from the bar)
                (bar.print if bar is not None else print)(line)
        if all(module.done(n) for n in range(module.models)):
            trainer.should_stop = True

    @staticmethod
    def _may_stop(trainer: pl.Trainer) -> bool:
        """``trainer.min_epochs`` and ``min_steps`` met, counted as Lightning counts them when it decides to
        stop an unpacked run (this epoch done if its last batch is)."""
        loop = trainer.fit_loop
        epochs = trainer.current_epoch + int(loop.epoch_loop._num_ready_batches_reached())
        return epochs >= (loop.min_epochs or 0) and trainer.global_step >= (loop.min_steps or 0)

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        states = checkpoint.setdefault(JOB_CALLBACKS, [{} for _ in self.stoppers])
        for own, stopper in zip(states, self.stoppers, strict=True):
            if stopper:
                own[stopper.state_key] = stopper.state_dict()

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """A packed resume: each stopper's state, and the models that had stopped early stay stopped (their
        weights then: those the checkpoint holds)."""
        for stopper, states in zip(self.stoppers, checkpoint.get(JOB_CALLBACKS, []), strict=False):
            if stopper and stopper.state_key in states:
                stopper.load_state_dict(states[stopper.state_key])
        for n, where in checkpoint.get(STOPPED_EARLY, {}).items():
            weights = model_part(checkpoint["state_dict"], n)
            pl_module.stopped[n] = Stopped(where["epochs"], where["global_step"], weights)
