"""Before Hydra writes into ``hydra.run.dir``: refuse a finished run's directory and one in use."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from pytorch_lightning.utilities import rank_zero_only

from vae_zoo.run_lock import RunDirectoryLocked, hold_run_directory


class RunDirectoryGuard(Callback):
    """Hydra callback, run before Hydra saves ``.hydra/`` or opens the log: stop with one line if the
    directory already has a ``metrics.json`` (a finished run; an unfinished, preempted or killed run has
    none, so resuming it in place with ``ckpt_path=last`` stays possible), or if another live process
    holds its lock; else take the lock for the rest of this process (rank 0's: the other ranks of a
    distributed run share the directory)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if rank_zero_only.rank != 0:
            return  # a DDP rank started by rank 0 (Lightning re-runs train.py): rank 0 holds the lock
        run_dir = Path(config.hydra.run.dir)
        if (run_dir / "metrics.json").is_file():
            self._refuse(
                f"{run_dir} already holds a finished run (metrics.json) -- choose another hydra.run.dir"
            )
        try:
            hold_run_directory(run_dir)
        except RunDirectoryLocked as error:
            self._refuse(str(error))

    @staticmethod
    def _refuse(message: str) -> None:
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
