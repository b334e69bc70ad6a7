"""Exact resume: the random-number generators' states travel in checkpoints."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

from vae_zoo import rng_state


class ExactResume(pl.Callback):
    """Saves the states of Python's, NumPy's and torch's generators with every checkpoint, and restores
    them just before the first training step after a resume, after anything (sanity validation) that ran
    in between and that an uninterrupted run did not. With the data order and binarization functions of
    (seed, epoch, batch) and the schedules functions of the step, a resumed run then draws what the
    uninterrupted run drew. The model adds this callback.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"rng": rng_state.capture()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict["rng"]

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx
    ) -> None:
        state, self._pending = self._pending, None
        if state is not None:
            rng_state.restore(state)
