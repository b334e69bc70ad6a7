"""Preemption-safe training: SIGTERM, SIGINT or SIGUSR2 stops after the batch in flight and saves that step."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.utilities.exceptions import SIGTERMException


class Preemption(pl.Callback):
    """On SIGTERM (a cluster's preemption), SIGINT (Ctrl+C) or SIGUSR2 (submitit's notice before a SLURM
    time limit or preemption) training stops at the next batch boundary and the state of that step
    (weights, optimizer, schedulers, loop position, RNG states, data order) is saved to
    ``<dirpath>/<filename>``; ``ckpt_path=<that file>`` (or ``ckpt_path=last`` in the same run directory)
    continues exactly where it stopped.

    Lightning stops at a batch boundary on SIGTERM; SIGINT and SIGUSR2 are turned into SIGTERM so that
    neither lands between two parameter updates. A second Ctrl+C interrupts at once. After a SIGUSR2 stop,
    ``hand_over`` passes the signal to the handler that was installed before (submitit's, which requeues
    the job: ``hydra_plugins.vae_zoo_launchers.resuming_slurm_launcher`` makes the requeued job resume from this checkpoint).
    ``signal_received`` and ``saved`` tell the caller what happened.
    """

    #: a pack runs it once for all its jobs (``vae_zoo.packing``)
    pack_wide = True

    CAUGHT = (signal.SIGINT, signal.SIGUSR2)

    def __init__(self, dirpath: str, filename: str = "last.ckpt") -> None:
        self.path = Path(dirpath) / filename
        self.signal_received: int | None = None
        self.saved: Path | None = None
        self._previous: dict[int, object] = {}

    def _caught(self, signum, frame) -> None:
        self.signal_received = signum
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, self._previous[signal.SIGINT])  # a second Ctrl+C interrupts at once
        os.kill(os.getpid(), signal.SIGTERM)

    def _restore_handlers(self) -> None:
        for signum, handler in self._previous.items():
            if signal.getsignal(signum) == self._caught:
                signal.signal(signum, handler)

    def hand_over(self) -> None:
        """After a SIGUSR2 stop: call the SIGUSR2 handler that was there before this run's (if any)."""
        handler = self._previous.get(signal.SIGUSR2)
        if self.signal_received == signal.SIGUSR2 and callable(handler):
            handler(signal.SIGUSR2, None)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if threading.current_thread() is threading.main_thread():
            for signum in self.CAUGHT:
                self._previous[signum] = signal.getsignal(signum)
                signal.signal(signum, self._caught)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore_handlers()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._restore_handlers()
        if isinstance(exception, SIGTERMException):
            self.signal_received = self.signal_received or signal.SIGTERM
            trainer.save_checkpoint(self.path)
            self.saved = self.path
