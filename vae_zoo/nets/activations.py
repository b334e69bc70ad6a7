"""Activation layers named in config by their torch.nn class name (``ReLU``, ``ELU``, ``Tanh``, ...)."""

from torch import nn

from vae_zoo.errors import ConfigError


def activation(name: str) -> nn.Module:
    layer = getattr(nn, name, None)
    if not (isinstance(layer, type) and issubclass(layer, nn.Module)):
        raise ConfigError(f"activation {name!r} is not a torch.nn layer; use e.g. ReLU, ELU, GELU, Tanh")
    return layer()
