"""A component's settings checked against its constructor before it is called: every key must be one of its
parameters, every value of the parameter's annotated type.

``python train.py model.latent.dim=abc`` or ``+model.latent.dimm=3`` would otherwise fail inside the
constructor (a ``TypeError`` from a comparison or an unexpected keyword, wrapped by Hydra in many lines).
The annotations say what each setting is: ``int`` (not a bool), ``float`` (an int or float, finite unless
its default is infinite, never NaN), ``bool``, ``str``, ``None``, ``Literal[...]``, lists and tuples of
those, mappings, paths (strings), other classes (a ``_target_`` dict that Hydra builds) and unions of them.
An annotation of any other kind is not checked here; the constructor's own range checks (``dim >= 1``) come
after.
"""

from __future__ import annotations

import inspect
import math
import os
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from vae_zoo.errors import ConfigError

UNCHECKED = object()
#: libraries whose constructors' ``**kwargs`` accept no further settings (``nn.Module``, ``LightningModule``)
CLOSED_LIBRARIES = ("torch", "pytorch_lightning", "lightning", "lightning_fabric")
_EMPTY = inspect.Parameter.empty


def parameters(cls: type) -> tuple[dict[str, inspect.Parameter], bool]:
    """The named constructor parameters of ``cls`` and of the classes its ``**kwargs`` pass on to, following
    the method resolution order until a constructor without ``**kwargs`` or one of torch's or Lightning's
    (whose ``**kwargs`` take nothing further); and whether the chain stays open (``**kwargs`` that end in no
    such constructor: any key may be meant)."""
    found: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass is object:
            continue
        try:
            signature = inspect.signature(vars(klass)["__init__"])
        except (TypeError, ValueError):
            return found, True
        named = list(signature.parameters.values())[1:]
        for parameter in named:
            if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
                found.setdefault(parameter.name, _with_owner(parameter, klass))
        takes_more = any(p.kind is p.VAR_KEYWORD for p in named)
        if not takes_more or klass.__module__.split(".")[0] in CLOSED_LIBRARIES:
            return found, False
    return found, True


def _with_owner(parameter: inspect.Parameter, klass: type) -> inspect.Parameter:
    """``parameter`` with its annotation evaluated in ``klass``'s module (``from __future__ import
    annotations`` leaves strings); UNCHECKED where it names what exists only for type checkers."""
    annotation = parameter.annotation
    if isinstance(annotation, str):
        try:
            annotation = eval(annotation, vars(sys.modules[klass.__module__]))
        except Exception:  # noqa: BLE001 -- a name imported under TYPE_CHECKING: not checkable here
            annotation = UNCHECKED
    return parameter.replace(annotation=annotation)


def fits(value: Any, hint: Any, default: Any = _EMPTY) -> bool:
    """Whether ``value`` (a plain config value) is of type ``hint``; hints of other kinds fit anything."""
    origin, arms = typing.get_origin(hint), typing.get_args(hint)
    if hint in (UNCHECKED, _EMPTY, Any):
        return True
    if hint is None or hint is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, arm, default) for arm in arms)
    if origin is typing.Literal:
        return any(value == arm and type(value) is type(arm) for arm in arms)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return False
        infinite_default = isinstance(default, float) and math.isinf(default)
        return math.isfinite(value) or (infinite_default and not math.isnan(value))
    if hint is str:
        return isinstance(value, str)
    container = origin or hint
    if container in (list, tuple, Sequence, typing.Sequence):
        if not isinstance(value, (list, tuple)):
            return False
        if container is tuple and arms and arms[-1] is not Ellipsis:  # tuple[int, str]: so many, each its own
            return len(value) == len(arms) and all(fits(v, a) for v, a in zip(value, arms, strict=True))
        return all(fits(v, arms[0] if arms else Any) for v in value)
    if container in (dict, Mapping, typing.Mapping):
        return isinstance(value, Mapping)
    if hint in (Path, os.PathLike):
        return isinstance(value, str)
    if isinstance(hint, type):  # another class: config holds it as a dict that Hydra builds (``_target_``)
        return isinstance(value, (hint, Mapping))
    return True


def describe(hint: Any) -> str:
    """``hint`` in words: "an integer", "a number", "a list of integers", "null", ..."""
    origin, arms = typing.get_origin(hint), typing.get_args(hint)
    if hint is None or hint is type(None):
        return "null"
    if origin in (typing.Union, types.UnionType) or origin is typing.Literal:
        flat = [
            a
            for arm in arms
            for a in (typing.get_args(arm) if typing.get_origin(arm) is typing.Literal else [arm])
        ]
        literals = [repr(arm) for arm in flat if isinstance(arm, (str, int, float)) and arm is not None]
        others = [describe(arm) for arm in flat if not isinstance(arm, (str, int, float))]
        words = ([f"one of {', '.join(dict.fromkeys(literals))}"] if literals else []) + others
        return " or ".join(dict.fromkeys(words))
    words = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}
    if hint in words:
        return words[hint]
    container = origin or hint
    if container in (list, tuple, Sequence, typing.Sequence):
        return f"a list ({describe(arms[0])} each)" if arms else "a list"
    if container in (dict, Mapping, typing.Mapping):
        return "a mapping"
    return getattr(hint, "__name__", str(hint))


def check_settings(cls: type, config: Mapping[str, Any], where: str) -> None:
    """One line for the first setting of ``config`` (a component's dict, ``_target_`` and friends aside) that
    ``cls``'s constructor does not take, or whose value is not of its parameter's type."""
    if OmegaConf.is_config(config):
        config = OmegaConf.to_container(config, resolve=True)
    known, open_ended = parameters(cls)
    for name, value in config.items():
        if not isinstance(name, str) or name.startswith("_"):
            continue
        parameter = known.get(name)
        if parameter is None:
            if open_ended:
                continue
            choices = ", ".join(sorted(known)) or "none"
            raise ConfigError(
                f"{where}.{name} is not a setting of {cls.__name__} (its settings: {choices}) -- check the "
                "spelling, or drop the key"
            )
        if value != parameter.default and not fits(value, parameter.annotation, parameter.default):
            raise ConfigError(
                f"{where}.{name}={value!r} must be {describe(parameter.annotation)} ({cls.__name__}'s {name})"
            )
