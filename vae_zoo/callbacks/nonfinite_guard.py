"""The non-finite guard: a non-finite loss term or gradient stops the run, or skips the update."""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from vae_zoo.errors import ConfigError, NonFiniteLossError

ACTIONS = ("stop", "skip")
#: steps between the deferred guard's reads on CUDA (``model.nonfinite_check_every: null``)
CUDA_CHECK_EVERY = 100


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def nonfinite_parts(loss: Tensor, terms: dict[str, Tensor], grads: list[Tensor]) -> list[str]:
    """What is not finite: the terms that are, else ``loss``, else ``gradient``; none where all are finite
    (a sum of them that overflowed float32 is not a non-finite step)."""
    bad = [name for name, value in terms.items() if not torch.isfinite(value)]
    if not bad and not torch.isfinite(loss):
        bad = ["loss"]
    if not bad and not all(torch.isfinite(grad).all() for grad in grads):
        bad = ["gradient"]
    return bad


def nonfinite_message(step: int, terms: list[str], where: str, last_good: str) -> str:
    """The guard's one line: what was non-finite, where, the last good checkpoint and what to change."""
    return (
        f"non-finite {_listed(terms)} at step {step} ({where}); the last good checkpoint is "
        f"{last_good or 'not written yet'} -- lower model.optimizer.lr, set trainer.gradient_clip_val, "
        "or skip such batches with model.nonfinite=skip"
    )


class NonFiniteGuard(pl.Callback):
    """After the backward pass and before the optimizer step: if the loss or a gradient is not finite,
    ``stop`` raises ``NonFiniteLossError`` naming the step and the terms (the weights and the last
    checkpoint stay good), ``skip`` leaves the parameters untouched this step and counts it
    (``train/skipped_batches``; the count is checkpointed). A skipped step stays out of the epoch means.
    The model adds this callback (``model.nonfinite``).

    Every step (``check_every=1``, the CPU's default): one reduction checks loss and gradients, the loss
    plus the sum of every gradient is finite iff all of them are (barring a float32 overflow of the sum,
    which an exact per-tensor check then rules out); reading it is one host synchronization per step.

    Deferred (``check_every=N > 1``, CUDA's default N = 100, with a fused optimizer and no gradient
    scaler): nothing is read per step. One kernel sets a device flag when the loss or any gradient is
    non-finite (the exact check AMP's scaler uses), and the fused optimizer takes it as ``found_inf``, so
    a flagged step changes neither weights nor moments nor step counts: nothing non-finite is ever applied.
    The flag also zeroes the step's weight in the epoch means and records the first bad step and its
    terms on the device. The host reads them every N steps and at the end of each epoch: ``stop`` then
    raises the same error naming the first bad step (so the stop comes up to N - 1 steps after it, the
    steps between trained as usual), ``skip`` logs the count. With a gradient scaler (16-mixed),
    overflowing gradients are the scaler's to skip, so only the loss is checked, every step.
    """

    def __init__(self, action: str = "stop", check_every: int | None = None) -> None:
        if action not in ACTIONS:
            raise ConfigError(f"model.nonfinite={action!r} is not one of {', '.join(ACTIONS)}, off")
        if check_every is not None and check_every < 1:
            raise ConfigError(f"model.nonfinite_check_every={check_every} must be >= 1 (or null: auto)")
        self.action = action
        self.check_every = check_every
        self.skipped_batches = 0

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._trainable = [p for p in pl_module.parameters() if p.requires_grad]
        self._scaled = getattr(trainer.precision_plugin, "scaler", None) is not None
        fused = all(group.get("fused") for opt in trainer.optimizers for group in opt.param_groups)
        every = self.check_every or (CUDA_CHECK_EVERY if pl_module.device.type == "cuda" else 1)
        self.every = every if fused and not self._scaled and len(trainer.optimizers) == 1 else 1
        device = pl_module.device
        self._first_bad = torch.full((), -1, dtype=torch.long, device=device)  # step, -1: none
        self._first_terms: Tensor | None = None  # which of (loss, terms...) were non-finite then
        self._skipped = torch.full((), self.skipped_batches, dtype=torch.long, device=device)
        self._flag = torch.zeros((), device=device)

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer) -> None:
        if self.every > 1:
            self._flag_step(trainer, pl_module, optimizer)
            return
        step = pl_module.step_output
        grads = [p.grad for p in self._trainable if p.grad is not None]
        probe = (
            step.loss
            if self._scaled or not grads
            else torch.stack([step.loss, *(g.sum() for g in grads)]).sum()
        )
        if math.isfinite(probe.item()):
            return
        bad = nonfinite_parts(step.loss, step.terms, grads)
        if not bad:
            return  # finite values whose sum overflowed float32
        if self.action == "skip":
            self.skipped_batches += 1
            pl_module.log("train/skipped_batches", float(self.skipped_batches))
        else:
            self._stop(trainer, trainer.global_step, bad, where=self._position(trainer))
        pl_module.step_output = None  # not part of the epoch means
        for p in self._trainable:
            p.grad = None  # the optimizer skips parameters without a gradient

    # -- deferred: a device flag per step, read every ``every`` steps ------------------------------

    def _flag_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer) -> None:
        step = pl_module.step_output
        values = torch.stack([step.loss, *step.terms.values()])
        grads = [p.grad for p in self._trainable if p.grad is not None]
        self._flag.zero_()
        if grads:  # sets the flag to 1 if any gradient has a non-finite element (AMP's exact check)
            unit = torch.ones((), device=self._flag.device)
            torch._amp_foreach_non_finite_check_and_unscale_(grads, self._flag, unit)
        terms = ~torch.isfinite(values)
        bad = terms.any() | self._flag.bool()
        self._flag.copy_(bad)
        optimizer.found_inf = self._flag  # the fused step is a no-op when it is 1
        first = bad & (self._first_bad < 0)
        self._first_bad = torch.where(first, trainer.global_step, self._first_bad)
        self._first_terms = (
            terms if self._first_terms is None else torch.where(first, terms, self._first_terms)
        )
        self._skipped += bad
        kept = ~bad
        pl_module.step_output = step._replace(
            loss=torch.where(kept, step.loss, 0.0),
            terms={name: torch.where(kept, value, 0.0) for name, value in step.terms.items()},
            images=kept * step.images,
        )

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.every > 1 and trainer.global_step % self.every == 0:
            self._read(trainer, pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.every > 1:
            self._read(trainer, pl_module)

    def _read(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The host's look at the device flags: one synchronization per ``every`` steps."""
        first = int(self._first_bad)
        if first < 0:
            return
        if self.action == "skip":
            self.skipped_batches = int(self._skipped)
            pl_module.log("train/skipped_batches", float(self.skipped_batches))
            return
        names = ["loss", *pl_module.step_output.terms]
        bad = [name for name, flag in zip(names, self._first_terms.tolist()) if flag and name != "loss"]
        if not bad:
            bad = ["loss"] if self._first_terms[0] else ["gradient"]
        where = f"seen at step {trainer.global_step}; the guard reads every {self.every} steps"
        self._stop(trainer, first, bad, where)

    # -- shared ------------------------------------------------------------------------------------

    @staticmethod
    def _position(trainer: pl.Trainer) -> str:
        return f"epoch {trainer.current_epoch}, batch {trainer.fit_loop.epoch_loop.batch_idx}"

    @staticmethod
    def _stop(trainer: pl.Trainer, step: int, terms: list[str], where: str) -> None:
        checkpoint = trainer.checkpoint_callback
        last_good = (checkpoint.last_model_path or checkpoint.best_model_path) if checkpoint else ""
        raise NonFiniteLossError(nonfinite_message(step, terms, where, last_good))

    def state_dict(self) -> dict[str, Any]:
        if getattr(self, "every", 1) > 1:
            self.skipped_batches = int(self._skipped)
        return {"skipped_batches": self.skipped_batches}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.skipped_batches = state_dict["skipped_batches"]
