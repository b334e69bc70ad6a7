"""Each model's learning-rate schedule in a pack: model ``n``'s scheduler (``model.scheduler``, built as its
unpacked run builds it) on model ``n``'s own optimizer, its state in its own checkpoint.

Lightning steps one schedule of one optimizer; the pack registers this object in its place, and
``PackedVAE`` steps it where Lightning steps an unpacked run's: a schedule by epoch after the epoch's last
training batch (before validation), ``ReduceLROnPlateau`` at the end of the epoch on each model's own value
of the monitored metric (Lightning reads one value from ``callback_metrics``, which a pack does not fill).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau


class PackedSchedules:
    """The N models' schedulers; ``optimizer`` is the pack's (Lightning checks that a schedule belongs to an
    optimizer it was given)."""

    def __init__(self, schedulers: Sequence[LRScheduler], optimizer: torch.optim.Optimizer) -> None:
        self.schedulers = list(schedulers)
        self.optimizer = optimizer
        self.on_metric = isinstance(self.schedulers[0], ReduceLROnPlateau)

    def step(self, metrics: Sequence[float] | None = None) -> None:
        """Each model's scheduler one step; a plateau scheduler on ``metrics[n]``, model ``n``'s value."""
        if self.on_metric:
            for scheduler, metric in zip(self.schedulers, metrics, strict=True):
                scheduler.step(metric)
        else:
            for scheduler in self.schedulers:
                scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return {"models": [scheduler.state_dict() for scheduler in self.schedulers]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for scheduler, own in zip(self.schedulers, state_dict["models"], strict=True):
            scheduler.load_state_dict(own)
