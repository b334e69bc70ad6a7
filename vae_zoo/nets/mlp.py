"""Fully connected encoder (image -> features) and decoder (latent sample -> likelihood logits)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
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


def with_condition(inputs: Tensor, condition: Tensor | None) -> Tensor:
    """``inputs`` ``(..., B, F)`` with a conditional model's ``condition`` ``(B, C)`` appended to each row,
    repeated over any leading sample dims: ``(..., B, F + C)``; unchanged without one."""
    if condition is None:
        return inputs
    return torch.cat([inputs, condition.expand(*inputs.shape[:-1], condition.shape[-1])], dim=-1)


class MLPEncoder(nn.Module):
    """Flattened image ``(B, C, H, W)`` through hidden layers to ``out_features`` features; with
    ``hidden: []`` the features are the pixels, and the latent head is a linear model of the image. A
    conditional model's ``condition`` ``(B, condition_features)`` joins the pixels at the input."""

    def __init__(
        self,
        input_shape: Sequence[int],
        hidden: Sequence[int] = (512, 256),
        activation: str = "ReLU",
        condition_features: int = 0,
    ):
        super().__init__()
        inputs = math.prod(input_shape) + condition_features
        self.net = mlp([inputs, *hidden], activation)
        self.out_features = hidden[-1] if hidden else inputs

    def forward(self, x: Tensor, condition: Tensor | None = None) -> Tensor:
        return self.net(with_condition(x.flatten(start_dim=-3), condition))


class MLPDecoder(nn.Module):
    """Latent samples ``(..., D)`` to logits shaped ``(..., *output_shape)``; any leading dims pass through;
    ``hidden: []`` is one linear layer. A conditional model's ``condition`` ``(B, condition_features)`` joins
    ``z`` at the input."""

    def __init__(
        self,
        in_features: int,
        output_shape: Sequence[int],
        hidden: Sequence[int] = (256, 512),
        activation: str = "ReLU",
        condition_features: int = 0,
    ):
        super().__init__()
        self.output_shape = tuple(output_shape)
        sizes = [in_features + condition_features, *hidden]
        self.net = nn.Sequential(mlp(sizes, activation), nn.Linear(sizes[-1], math.prod(output_shape)))

    def forward(self, z: Tensor, condition: Tensor | None = None) -> Tensor:
        return self.net(with_condition(z, condition)).unflatten(-1, self.output_shape)
