"""N convolutions with stacked weights, in one of two forms that compute the same numbers.

- Grouped (HFTA's fused convolutions): the models' images side by side in the channels, ``groups = N``, so
  model ``n``'s output channels see only its input channels and its weights; one kernel for the N models.
- Per model: each model's images through its own weights, one call each (the unpacked layer's own call, so
  its outputs and gradients are the unpacked model's bit for bit).

A pack takes the grouped form on CUDA and the per-model one elsewhere: on the CPU oneDNN ran the grouped
form of a pack of 8 conv VAEs' layers 1.1-1.5 times slower than eight calls (``scripts/packed_conv_forms.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _side_by_side(x: Tensor, models: int) -> Tensor:
    """``(N * B, C, H, W)``, each model's images in turn, as ``(B, N * C, H, W)``."""
    rows, channels, height, width = x.shape
    return x.reshape(models, rows // models, channels, height, width).transpose(0, 1).flatten(1, 2)


def _in_turn(y: Tensor, models: int) -> Tensor:
    """The inverse of ``_side_by_side``: ``(B, N * C, H, W)`` as ``(N * B, C, H, W)``."""
    _, channels, height, width = y.shape
    return (
        y.unflatten(1, (models, channels // models))
        .transpose(0, 1)
        .reshape(-1, channels // models, height, width)
    )


class PackedConv(nn.Module):
    """``weight``: the N models' weights stacked, ``(N, *conv.weight.shape)``; ``bias`` ``(N, out)``; row ``n``
    of the state dict is model ``n``'s layer. Input ``(N * B, C, H, W)`` with each model's images in turn."""

    def __init__(self, conv: nn.Conv2d | nn.ConvTranspose2d, weight: Tensor, bias: Tensor | None) -> None:
        super().__init__()
        self.transposed = isinstance(conv, nn.ConvTranspose2d)
        self.stride, self.padding, self.dilation, self.groups = (
            conv.stride,
            conv.padding,
            conv.dilation,
            conv.groups,
        )
        self.output_padding = conv.output_padding
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias) if bias is not None else None

    @classmethod
    def stack(cls, convs: Sequence[nn.Conv2d | nn.ConvTranspose2d]) -> PackedConv:
        with torch.no_grad():
            weight = torch.stack([conv.weight for conv in convs])
            bias = torch.stack([conv.bias for conv in convs]) if convs[0].bias is not None else None
        return cls(convs[0], weight, bias)

    @property
    def models(self) -> int:
        return self.weight.shape[0]

    def extra_repr(self) -> str:
        kind = "transposed, " if self.transposed else ""
        return f"models={self.models}, {kind}weight={tuple(self.weight.shape[1:])}, stride={self.stride}"

    def _convolve(self, x: Tensor, weight: Tensor, bias: Tensor | None, groups: int) -> Tensor:
        if self.transposed:
            return F.conv_transpose2d(
                x, weight, bias, self.stride, self.padding, self.output_padding, groups, self.dilation
            )
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, groups)

    def forward(self, x: Tensor) -> Tensor:
        return self.grouped(x) if x.is_cuda and self.models > 1 else self.per_model(x)

    def per_model(self, x: Tensor) -> Tensor:
        """Model ``n``'s rows of ``x`` through its own weights, one call per model."""
        biases = [None] * self.models if self.bias is None else self.bias
        outputs = [
            self._convolve(images, weight, bias, self.groups)
            for images, weight, bias in zip(x.chunk(self.models), self.weight, biases)
        ]
        return outputs[0] if self.models == 1 else torch.cat(outputs)

    def grouped(self, x: Tensor) -> Tensor:
        """The N models' convolutions as one with ``groups = N`` times the layer's own."""
        bias = None if self.bias is None else self.bias.flatten()
        y = self._convolve(
            _side_by_side(x, self.models), self.weight.flatten(0, 1), bias, self.groups * self.models
        )
        return _in_turn(y, self.models)
