"""The optimizer from ``model.optimizer``, with the fastest implementation its device has.

torch ships three implementations of Adam, AdamW, SGD and Adagrad that compute the same update:
``fused`` (one kernel for all parameters; CPU and CUDA in current torch), ``foreach`` (a few kernels over
lists of tensors; CUDA), and ``for_loop`` (a few kernels per tensor). Left to itself torch picks
``for_loop`` on the CPU and ``foreach`` on CUDA; ``impl=auto`` picks ``fused`` wherever the optimizer
class and the parameters' device allow it, else ``foreach``, else ``for_loop``. The state (step, moments)
has the same layout in all three, so a checkpoint of one resumes under another: the configured
implementation wins over the one recorded in the checkpoint.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau
from torch.utils._foreach_utils import (
    _get_foreach_kernels_supported_devices,
    _get_fused_kernels_supported_devices,
)

from vae_zoo.components import build, refused_settings
from vae_zoo.errors import ConfigError
from vae_zoo.setting_types import fits

IMPLEMENTATIONS = ("auto", "fused", "foreach", "for_loop")


def available(optimizer_class: type, device: torch.device) -> list[str]:
    """The implementations ``optimizer_class`` has on ``device``, fastest first."""
    accepts = inspect.signature(optimizer_class).parameters
    found = []
    if "fused" in accepts and device.type in _get_fused_kernels_supported_devices():
        found.append("fused")
    if "foreach" in accepts and device.type in _get_foreach_kernels_supported_devices():
        found.append("foreach")
    return [*found, "for_loop"]


def implementation_flags(
    impl: str, optimizer_class: type, device: torch.device, clips_mixed_precision: bool = False
) -> dict[str, bool]:
    """``fused``/``foreach`` keyword arguments for ``impl`` (``auto``: the fastest available). Lightning
    cannot clip the gradients of a fused optimizer under mixed precision (it leaves their unscaling to the
    fused kernel and refuses), so with ``clips_mixed_precision`` ``auto`` picks the next one and ``fused`` is
    refused in one line."""
    if impl not in IMPLEMENTATIONS:
        raise ConfigError(f"model.optimizer.impl={impl!r} is not one of {', '.join(IMPLEMENTATIONS)}")
    options = available(optimizer_class, device)
    if clips_mixed_precision:
        if impl == "fused":
            raise ConfigError(
                "model.optimizer.impl=fused cannot have its gradients clipped under mixed precision (Lightning "
                "leaves their unscaling to the fused kernel) -- use model.optimizer.impl=auto or drop "
                "trainer.gradient_clip_val"
            )
        options = [option for option in options if option != "fused"]
    chosen = options[0] if impl == "auto" else impl
    if chosen not in options:
        raise ConfigError(
            f"model.optimizer.impl={impl} is not available for {optimizer_class.__name__} on {device.type} "
            f"(available: {', '.join(options)}) -- use model.optimizer.impl=auto"
        )
    accepts = inspect.signature(optimizer_class).parameters
    flags = {"fused": chosen == "fused", "foreach": chosen == "foreach"}
    return {name: value for name, value in flags.items() if name in accepts}


def optimizer_factory(config: dict[str, Any]) -> tuple[Any, str]:
    """``model.optimizer`` built up to its parameters (a partial of the optimizer class) and its ``impl``;
    one line where ``lr`` is not a finite number > 0."""
    lr = config.get("lr", 1.0)
    if not fits(lr, float) or lr <= 0:  # fits: a number, not a bool, finite
        raise ConfigError(f"model.optimizer.lr={lr!r} must be a finite number > 0")
    config = dict(config)
    impl = config.pop("impl", "auto")
    return build(config, torch.optim.Optimizer, "model.optimizer"), impl


def check_optimizer(config: dict[str, Any], scheduler: dict[str, Any] | None = None) -> None:
    """Stop with one line where ``model.optimizer`` cannot be built: ``lr`` not a finite number > 0, or a
    setting the optimizer class refuses (``betas`` outside [0, 1), a negative ``weight_decay``); or where
    ``model.scheduler`` fails on it at its first step (``CosineAnnealingLR`` with ``T_max=0`` divides by
    zero). Checked when the model is built, on one placeholder parameter: a run should not start with it."""
    factory, _ = optimizer_factory(config)
    try:
        optimizer = factory(params=[torch.nn.Parameter(torch.zeros(1))])
    except (ValueError, TypeError) as error:
        raise refused_settings(factory.func, "model.optimizer", error) from None
    if not scheduler:
        return
    schedule = build(scheduler, LRScheduler, "model.scheduler")
    try:
        stepped = schedule(optimizer=optimizer)
        optimizer.step()
        if isinstance(stepped, ReduceLROnPlateau):
            stepped.step(0.0)  # it steps on the monitored metric
        else:
            stepped.step()
    except (ValueError, TypeError, ArithmeticError) as error:
        raise refused_settings(schedule.func, "model.scheduler", error) from None


def build_optimizer(
    config: dict[str, Any],
    params: Iterable[torch.nn.Parameter],
    device: torch.device,
    clips_mixed_precision: bool = False,
) -> torch.optim.Optimizer:
    """``config`` (``_target_``, ``_partial_``, settings, ``impl``) instantiated on ``params``;
    ``clips_mixed_precision``: the trainer clips gradients under mixed precision (``implementation_flags``)."""
    factory, impl = optimizer_factory(config)
    flags = implementation_flags(impl, factory.func, device, clips_mixed_precision)
    optimizer = factory(params=params, **flags)
    optimizer.register_load_state_dict_pre_hook(_keep_implementation)
    return optimizer


def _keep_implementation(optimizer: torch.optim.Optimizer, state_dict: dict[str, Any]) -> dict[str, Any]:
    """Loading a state dict replaces the param groups' settings with the saved ones; keep this optimizer's
    ``fused``/``foreach`` instead (torch then places the step counts as this implementation wants them)."""
    groups = [
        {**saved, **{key: group[key] for key in ("fused", "foreach") if key in group}}
        for saved, group in zip(state_dict["param_groups"], optimizer.param_groups)
    ]
    return {**state_dict, "param_groups": groups}


def clips_mixed_precision(trainer) -> bool:
    """Whether ``trainer`` (None: a module outside any) clips gradients under 16-bit mixed precision."""
    return (
        trainer is not None and bool(trainer.gradient_clip_val) and str(trainer.precision).endswith("-mixed")
    )
