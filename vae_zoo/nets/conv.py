"""Convolutional encoder and decoder for any image shape ``(C, H, W)`` the datamodule reports.

Each encoder layer halves the spatial size (kernel 4, stride 2, padding 1: ``H -> floor(H/2)``). The
decoder starts from ``ceil(H / 2^L) x ceil(W / 2^L)``, doubles L times with transposed convolutions, and
crops to ``H x W`` (28 -> 7 -> 28; 30 -> 8 -> 32 -> 30), so nothing assumes 28x28 or 64x64.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from torch import Tensor, nn

from vae_zoo.errors import ConfigError
from vae_zoo.nets.activations import activation as make_activation
from vae_zoo.nets.mlp import with_condition


def check_sizes(part: str, channels: Sequence[int], features: int) -> None:
    if not channels or min(channels) < 1 or features < 1:
        raise ConfigError(f"model.{part}.channels={list(channels)} and features={features} must be positive")


class ConvEncoder(nn.Module):
    """Stride-2 convolutions, then a dense layer to ``features``. A conditional model's ``condition``
    ``(B, condition_features)`` joins the flattened convolution maps at that dense layer: the label says
    what the whole image is, not what is where, and there it costs ``condition_features x features``
    weights (as constant input channels it would cost a kernel per class and channel, over every pixel)."""

    #: the config group whose settings its one-line errors name (``model.<group>.channels``)
    config_group = "encoder"

    def __init__(
        self,
        input_shape: Sequence[int],
        channels: Sequence[int] = (32, 64),
        features: int = 256,
        activation: str = "ReLU",
        condition_features: int = 0,
    ):
        super().__init__()
        c, h, w = input_shape
        check_sizes(self.config_group, channels, features)
        layers: list[nn.Module] = []
        for c_in, c_out in zip([c, *channels[:-1]], channels):
            layers += [
                nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1),
                make_activation(activation),
            ]
            h, w = h // 2, w // 2
        if h < 1 or w < 1:
            raise ConfigError(
                f"{self.config_group}=conv: {len(channels)} stride-2 layers shrink a {tuple(input_shape)} input to "
                f"nothing -- use fewer model.{self.config_group}.channels, or {self.config_group}=mlp (a table's rows: "
                "always)"
            )
        dense = nn.Linear(channels[-1] * h * w + condition_features, features)
        layers += [nn.Flatten(), dense, make_activation(activation)]
        self.net = nn.Sequential(*layers)
        self.out_features = features

    def forward(self, x: Tensor, condition: Tensor | None = None) -> Tensor:
        if condition is None:
            return self.net(x)
        return self.net[-2:](with_condition(self.net[:-2](x), condition))


class ConvDecoder(nn.Module):
    """Dense layers from ``z`` (and a conditional model's ``condition``, joined to ``z``), then transposed
    convolutions up to the image."""

    def __init__(
        self,
        in_features: int,
        output_shape: Sequence[int],
        channels: Sequence[int] = (64, 32),
        features: int = 256,
        activation: str = "ReLU",
        condition_features: int = 0,
    ):
        super().__init__()
        c, h, w = output_shape
        check_sizes("decoder", channels, features)
        self.output_shape = tuple(output_shape)
        scale = 2 ** len(channels)
        self.start = (channels[0], math.ceil(h / scale), math.ceil(w / scale))
        layers: list[nn.Module] = [
            nn.Linear(in_features + condition_features, features),
            make_activation(activation),
            nn.Linear(features, math.prod(self.start)),
            make_activation(activation),
            nn.Unflatten(1, self.start),
        ]
        for c_in, c_out in itertools.pairwise(channels):
            layers += [
                nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1),
                make_activation(activation),
            ]
        layers.append(nn.ConvTranspose2d(channels[-1], c, kernel_size=4, stride=2, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, condition: Tensor | None = None) -> Tensor:
        """Logits ``(..., B, C, H, W)`` for samples ``(..., B, D)``: the dense layers keep the sample dims, the
        convolutions take them as images after each batch image's own (so rows that belong together, such as
        a packed model's images, stay together)."""
        z = with_condition(z, condition)
        *samples, batch, _ = z.shape
        c, h, w = self.output_shape
        dense = self.net[:4](
            z
        )  # the two linear layers and their activations (net[4] unflattens a flat batch)
        images = dense.movedim(-2, 0).reshape(-1, *self.start)
        logits = self.net[5:](images)[:, :, :h, :w]
        return logits.reshape(batch, *samples, c, h, w).movedim(0, -4)
