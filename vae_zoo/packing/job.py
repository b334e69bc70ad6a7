"""A job of a packed sweep: its config and its Hydra runtime config, made current while the pack does its part."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig


@dataclass
class PackJob:
    """A job of the sweep: its task config (as ``train(cfg)`` receives it) and its Hydra runtime config (its
    output directory, choices and overrides), made current while the pack does this job's part."""

    cfg: DictConfig
    hydra: DictConfig | None = None

    @contextlib.contextmanager
    def current(self) -> Iterator[None]:
        if self.hydra is None:
            yield
            return
        instance = HydraConfig.instance()
        before, instance.cfg = instance.cfg, self.hydra
        try:
            yield
        finally:
            instance.cfg = before

    @property
    def output_dir(self) -> Path:
        with self.current():
            return Path(self.cfg.paths.output_dir)
