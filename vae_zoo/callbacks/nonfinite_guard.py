"""The non-finite guard: a non-finite loss term or gradient stops the run, or skips the update."""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch

from vae_zoo.errors import ConfigError, NonFiniteLossError

ACTIONS = ("stop", "skip")


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


class NonFiniteGuard(pl.Callback):
    """After the backward pass and before the optimizer step: if the loss or a gradient is not finite,
    ``stop`` raises ``NonFiniteLossError`` naming the step and the terms (the weights and the last
    checkpoint stay good), ``skip`` leaves the parameters untouched this step and counts it
    (``train/skipped_batches``; the count is checkpointed).

    One reduction checks both: the loss plus the sum of every gradient is finite iff all of them are
    (barring a float32 overflow of the sum, which an exact per-tensor check then rules out). With a
    gradient scaler (16-mixed), overflowing gradients are the scaler's to skip, so only the loss is
    checked. The step's loss and terms come from the model's ``step_output``; a skipped step's is
    cleared, so it stays out of the epoch means. The model adds this callback (``model.nonfinite``).
    """

    def __init__(self, action: str = "stop") -> None:
        if action not in ACTIONS:
            raise ConfigError(f"model.nonfinite={action!r} is not one of {', '.join(ACTIONS)}, off")
        self.action = action
        self.skipped_batches = 0

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._trainable = [p for p in pl_module.parameters() if p.requires_grad]

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer) -> None:
        step = pl_module.step_output
        grads = [p.grad for p in self._trainable if p.grad is not None]
        scaled = getattr(trainer.precision_plugin, "scaler", None) is not None
        probe = (
            step.loss if scaled or not grads else torch.stack([step.loss, *(g.sum() for g in grads)]).sum()
        )
        if math.isfinite(probe.item()):
            return
        bad = [name for name, value in step.terms.items() if not torch.isfinite(value)]
        if not bad and not torch.isfinite(step.loss):
            bad = ["loss"]
        if not bad:
            if all(torch.isfinite(grad).all() for grad in grads):
                return  # finite gradients whose sum overflowed float32
            bad = ["gradient"]
        self._non_finite(trainer, pl_module, bad)
        pl_module.step_output = None  # not part of the epoch means
        for p in self._trainable:
            p.grad = None  # the optimizer skips parameters without a gradient

    def _non_finite(self, trainer: pl.Trainer, pl_module: pl.LightningModule, terms: list[str]) -> None:
        if self.action == "skip":
            self.skipped_batches += 1
            pl_module.log("train/skipped_batches", float(self.skipped_batches))
            return
        checkpoint = trainer.checkpoint_callback
        last_good = (checkpoint.last_model_path or checkpoint.best_model_path) if checkpoint else ""
        raise NonFiniteLossError(
            f"non-finite {_listed(terms)} at step {trainer.global_step} (epoch {trainer.current_epoch}, batch "
            f"{trainer.fit_loop.epoch_loop.batch_idx}); the last good checkpoint is {last_good or 'not written yet'} "
            "-- lower model.optimizer.lr, set trainer.gradient_clip_val, or skip such batches with model.nonfinite=skip"
        )

    def state_dict(self) -> dict[str, Any]:
        return {"skipped_batches": self.skipped_batches}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.skipped_batches = state_dict["skipped_batches"]
