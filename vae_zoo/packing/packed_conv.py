"""N convolutions as one grouped convolution (HFTA's fused convolutions): the models' images side by side in
the channels, ``groups = N``, so model ``n``'s output channels see only its input channels and its weights."""

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
        if self.models == 1:  # one weight set: the plain layer's own call
            return self._convolve(x, self.weight[0], None if self.bias is None else self.bias[0], self.groups)
        bias = None if self.bias is None else self.bias.flatten()
        y = self._convolve(
            _side_by_side(x, self.models), self.weight.flatten(0, 1), bias, self.groups * self.models
        )
        return _in_turn(y, self.models)
