"""Refusing to start a run in a directory that already holds a finished run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class FinishedRunGuard(Callback):
    """Hydra callback: before Hydra writes anything into ``hydra.run.dir``, stop with one line if the
    directory already has a ``metrics.json`` (a finished run). An unfinished (preempted) run has none,
    so resuming it in place with ``ckpt_path=last`` stays possible."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        run_dir = Path(config.hydra.run.dir)
        if (run_dir / "metrics.json").is_file():
            print(
                f"error: {run_dir} already holds a finished run (metrics.json) -- choose another hydra.run.dir",
                file=sys.stderr,
            )
            sys.exit(2)
