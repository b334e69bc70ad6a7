"""Activation layers named in config by their torch.nn class name and optional numeric arguments:
``ReLU``, ``ELU``, ``Tanh``, ``LeakyReLU(0.3)`` (``negative_slope`` 0.3, as the DisARM paper's networks)."""

import re

from torch import nn

from vae_zoo.errors import ConfigError

SPEC = re.compile(r"^\s*(\w+)\s*(?:\(([^()]*)\))?\s*$")


def activation(spec: str) -> nn.Module:
    match = SPEC.match(spec)
    layer = getattr(nn, match[1], None) if match else None
    if not (isinstance(layer, type) and issubclass(layer, nn.Module)):
        raise ConfigError(
            f"activation {spec!r} is not a torch.nn layer; use e.g. ReLU, ELU, GELU, Tanh, LeakyReLU(0.3)"
        )
    try:
        arguments = [float(a) for a in match[2].split(",") if a.strip()] if match[2] else []
        return layer(*arguments)
    except (ValueError, TypeError):
        raise ConfigError(f"activation {spec!r}: its arguments must be numbers {match[1]} takes") from None
