"""A pack's N optimizers stepped by one call of their class's own ``step``.

torch's Adam, AdamW and SGD update each parameter tensor from its own gradient and state alone (their fused and
foreach kernels take lists of tensors), so one call over every model's parameters, the param groups with equal
settings merged, computes what N calls compute, bit for bit, with the overhead of one call (its Python and its
kernel launches) instead of N. Each model's state stays in its own optimizer, so its checkpoint is its own.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

#: the optimizer classes whose ``step`` updates each parameter from its own gradient and state alone
PER_TENSOR = (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD)


class OwnersState:
    """The joint optimizer's ``state``: a parameter's entry is the one its own model's optimizer holds, read through
    at every access (a model's optimizer replaces its state dict when it loads a checkpoint)."""

    def __init__(self, owners: dict[Tensor, torch.optim.Optimizer]) -> None:
        self.owners = owners

    def __getitem__(self, parameter: Tensor) -> dict[str, Any]:
        return self.owners[parameter].state[parameter]


def joint_optimizer(optimizers: Sequence[torch.optim.Optimizer]) -> torch.optim.Optimizer | None:
    """An optimizer of the class of ``optimizers`` over all their parameters and states, to be stepped with
    ``merged_groups`` as its param groups; None where they are not all of one class of ``PER_TENSOR``."""
    kind = type(optimizers[0])
    if kind not in PER_TENSOR or any(type(optimizer) is not kind for optimizer in optimizers):
        return None
    joint = copy.copy(optimizers[0])
    owners = {
        p: optimizer for optimizer in optimizers for group in optimizer.param_groups for p in group["params"]
    }
    joint.state = OwnersState(owners)
    return joint


def merged_groups(optimizers: Sequence[torch.optim.Optimizer]) -> list[dict[str, Any]]:
    """The param groups of ``optimizers`` as they are now (a scheduler may have moved a learning rate), those
    with equal settings as one group of their parameters in turn."""
    merged: dict[Any, dict[str, Any]] = {}
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            settings = {name: value for name, value in group.items() if name != "params"}
            try:
                key: Any = tuple(sorted(settings.items()))
                hash(key)
            except TypeError:  # a setting that cannot be compared so (a list): the group stays its own
                key = id(group)
            if key in merged:
                merged[key]["params"] += group["params"]
            else:
                merged[key] = {**settings, "params": list(group["params"])}
    return list(merged.values())
