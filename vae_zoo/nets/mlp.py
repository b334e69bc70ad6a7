"""Fully connected encoder (image -> features) and decoder (latent sample -> likelihood logits)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from torch import Tensor, nn

from vae_zoo.errors import ConfigError
from vae_zoo.nets.activations import activation


def mlp(sizes: Sequence[int], act: str) -> nn.Sequential:
    """Linear layers ``sizes[0] -> ... -> sizes[-1]``, each followed by the activation; none (the identity)
    for a single size."""
    if min(sizes) < 1:
        raise ConfigError(f"layer sizes {list(sizes[1:])} must be positive integers (model.*.hidden)")
    layers: list[nn.Module] = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        layers += [nn.Linear(fan_in, fan_out), activation(act)]
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """Flattened image ``(B, C, H, W)`` through hidden layers to ``out_features`` features; with
    ``hidden: []`` the features are the pixels, and the latent head is a linear model of the image."""

    def __init__(
        self, input_shape: Sequence[int], hidden: Sequence[int] = (512, 256), activation: str = "ReLU"
    ):
        super().__init__()
        self.net = mlp([math.prod(input_shape), *hidden], activation)
        self.out_features = hidden[-1] if hidden else math.prod(input_shape)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(start_dim=-3))


class MLPDecoder(nn.Module):
    """Latent samples ``(..., D)`` to logits shaped ``(..., *output_shape)``; any leading dims pass through;
    ``hidden: []`` is one linear layer."""

    def __init__(
        self,
        in_features: int,
        output_shape: Sequence[int],
        hidden: Sequence[int] = (256, 512),
        activation: str = "ReLU",
    ):
        super().__init__()
        self.output_shape = tuple(output_shape)
        self.net = nn.Sequential(
            mlp([in_features, *hidden], activation),
            nn.Linear([in_features, *hidden][-1], math.prod(output_shape)),
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).unflatten(-1, self.output_shape)
