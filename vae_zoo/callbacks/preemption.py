"""Preemption-safe training: SIGTERM or SIGINT stops after the batch in flight and saves that step."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.utilities.exceptions import SIGTERMException


class Preemption(pl.Callback):
    """On SIGTERM (a cluster's preemption) or SIGINT (Ctrl+C) training stops at the next batch boundary
    and the state of that step (weights, optimizer, schedulers, loop position, RNG states, data order)
    is saved to ``<dirpath>/<filename>``; ``ckpt_path=<that file>`` (or ``ckpt_path=last`` in the same
    run directory) continues exactly where it stopped.

    Lightning stops at a batch boundary on SIGTERM; SIGINT is turned into SIGTERM so that Ctrl+C never
    lands between two parameter updates. A second Ctrl+C interrupts at once. ``signal_received`` and
    ``saved`` tell the caller what happened.
    """

    def __init__(self, dirpath: str, filename: str = "last.ckpt") -> None:
        self.path = Path(dirpath) / filename
        self.signal_received: int | None = None
        self.saved: Path | None = None
        self._previous_sigint = None

    def _sigint(self, signum, frame) -> None:
        self.signal_received = signal.SIGINT
        signal.signal(signal.SIGINT, self._previous_sigint)  # a second Ctrl+C interrupts at once
        os.kill(os.getpid(), signal.SIGTERM)

    def _restore_sigint(self) -> None:
        if self._previous_sigint is not None:
            signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous_sigint = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._sigint)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore_sigint()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._restore_sigint()
        if isinstance(exception, SIGTERMException):
            self.signal_received = self.signal_received or signal.SIGTERM
            trainer.save_checkpoint(self.path)
            self.saved = self.path
