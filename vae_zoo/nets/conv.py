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


def refuse_a_condition_on_the_grid(part: str, grid: bool, condition_features: int) -> None:
    if grid and condition_features:
        raise ConfigError(
            f"model.{part}.grid=true has no dense layer for the condition to join -- use "
            f"model.{part}.grid=false with condition=label"
        )


class ConvEncoder(nn.Module):
    """Stride-2 convolutions, then a dense layer to ``features``. A conditional model's ``condition``
    ``(B, condition_features)`` joins the flattened convolution maps at that dense layer: the label says
    what the whole image is, not what is where, and there it costs ``condition_features x features``
    weights (as constant input channels it would cost a kernel per class and channel, over every pixel).

    ``grid=True`` keeps the last map: no dense layer, the features are the map flattened channel by channel,
    ``channels[-1] x h x w`` (a grid of ``h x w`` positions, as ``latent=vector_quantized`` with
    ``model.latent.grid=true`` reads it)."""

    #: the config group whose settings its one-line errors name (``model.<group>.channels``)
    config_group = "encoder"

    def __init__(
        self,
        input_shape: Sequence[int],
        channels: Sequence[int] = (32, 64),
        features: int = 256,
        activation: str = "ReLU",
        condition_features: int = 0,
        grid: bool = False,
    ):
        super().__init__()
        c, h, w = input_shape
        check_sizes(self.config_group, channels, features)
        refuse_a_condition_on_the_grid(self.config_group, grid, condition_features)
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
        #: the last map's ``(h, w)`` positions that the features are a grid of; None with a dense layer
        self.grid_shape = (h, w) if grid else None
        if grid:
            layers.append(nn.Flatten())
            self.out_features = channels[-1] * h * w
        else:
            dense = nn.Linear(channels[-1] * h * w + condition_features, features)
            layers += [nn.Flatten(), dense, make_activation(activation)]
            self.out_features = features
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, condition: Tensor | None = None) -> Tensor:
        if condition is None:
            return self.net(x)
        return self.net[-2:](with_condition(self.net[:-2](x), condition))


class ConvDecoder(nn.Module):
    """Dense layers from ``z`` (and a conditional model's ``condition``, joined to ``z``), then transposed
    convolutions up to the image.

    ``grid=True``: no dense layers; ``z`` is read as a grid, channel by channel, of the start's size
    ``ceil(H / 2^L) x ceil(W / 2^L)`` (``latent=vector_quantized`` with ``model.latent.grid=true`` writes its
    codes so), which a 3x3 convolution takes to ``channels[0]`` maps."""

    def __init__(
        self,
        in_features: int,
        output_shape: Sequence[int],
        channels: Sequence[int] = (64, 32),
        features: int = 256,
        activation: str = "ReLU",
        condition_features: int = 0,
        grid: bool = False,
    ):
        super().__init__()
        c, h, w = output_shape
        check_sizes("decoder", channels, features)
        refuse_a_condition_on_the_grid("decoder", grid, condition_features)
        self.output_shape, self.grid = tuple(output_shape), grid
        scale = 2 ** len(channels)
        height, width = math.ceil(h / scale), math.ceil(w / scale)
        if grid:
            if in_features % (height * width):
                raise ConfigError(
                    f"model.decoder.grid=true: the latent's {in_features} coordinates are not a {height} x {width} "
                    f"grid (the start of {len(channels)} layers to {h} x {w}) -- give the latent a multiple of "
                    f"{height * width} (latent=vector_quantized: model.latent.positions={height * width})"
                )
            self.start = (in_features // (height * width), height, width)
            layers: list[nn.Module] = [
                nn.Conv2d(self.start[0], channels[0], kernel_size=3, padding=1),
                make_activation(activation),
            ]
        else:
            self.start = (channels[0], height, width)
            layers = [
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
        # a grid is read as it comes; else the two linear layers and their activations (net[4] unflattens a flat
        # batch, which these images are not)
        dense = z if self.grid else self.net[:4](z)
        images = dense.movedim(-2, 0).reshape(-1, *self.start)
        logits = self.net[0 if self.grid else 5 :](images)[:, :, :h, :w]
        return logits.reshape(batch, *samples, c, h, w).movedim(0, -4)
