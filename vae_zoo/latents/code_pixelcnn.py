"""A gated PixelCNN over a VQ-VAE's code grid (van den Oord et al. 2016, "Conditional Image Generation with
PixelCNN Decoders"; the VQ-VAE paper's prior): ``p(k) = prod_n p(k_n | k_<n)`` in raster order over the
``height x width`` positions, the logits of every position at once from one pass of causal convolutions.

Each layer has a vertical stack, which at row ``i`` sees the rows ``<= i`` (a ``(half + 1) x kernel``
convolution of the rows above, padded at the top), and a horizontal stack, which at ``(i, j)`` sees row ``i``'s
columns ``<= j`` (a ``1 x (half + 1)`` convolution padded on the left) and the vertical stack's maps one row down
(rows ``< i``). The first layer's horizontal input is shifted one column right, so that ``(i, j)`` sees neither
its own code nor a later one; afterwards the stacks hold only earlier codes and stack freely, with no blind spot.
Each stack is gated, ``tanh(a) * sigmoid(b)`` of its two halves of ``2C`` maps, and the horizontal one is
residual after the first layer. The logits are two 1x1 convolutions of the last horizontal maps, the last
starting at zero (the uniform prior). Every layer is a plain convolution with its padding made explicit, so a
pack of models stacks them as any convolution (``vae_zoo.packing.packed_conv``).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from vae_zoo.packed_batch import images_by_model, images_in_turn

#: the convolutions' width: each layer reaches one more row up and one more column to each side
KERNEL = 3


def gated(maps: Tensor) -> Tensor:
    """``tanh(a) * sigmoid(b)`` of the two halves of the channels."""
    a, b = maps.chunk(2, dim=1)
    return a.tanh() * b.sigmoid()


class GatedLayer(nn.Module):
    """One layer of both stacks, ``kernel`` wide; ``first``: its horizontal input shifted one column right and no
    residual (the input there is the codes themselves)."""

    def __init__(self, in_channels: int, channels: int, kernel: int, first: bool) -> None:
        super().__init__()
        self.half, self.first = kernel // 2, first
        self.vertical = nn.Conv2d(in_channels, 2 * channels, (self.half + 1, kernel))
        self.horizontal = nn.Conv2d(in_channels, 2 * channels, (1, self.half + 1))
        self.vertical_to_horizontal = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.horizontal_out = nn.Conv2d(channels, channels, 1)

    def forward(self, vertical: Tensor, horizontal: Tensor) -> tuple[Tensor, Tensor]:
        height, width = vertical.shape[-2:]
        half = self.half
        above = self.vertical(F.pad(vertical, (half, half, half, 0)))  # (i, j): rows i - half .. i
        # columns j - half .. j (first: j - half - 1 .. j - 1)
        left = F.pad(horizontal, (half + self.first, 0))[..., : width + half]
        down_one = F.pad(above, (0, 0, 1, 0))[..., :height, :]  # (i, j): the vertical maps of row i - 1
        joined = self.horizontal(left) + self.vertical_to_horizontal(down_one)
        out = self.horizontal_out(gated(joined))
        return gated(above), out if self.first else out + horizontal


class CodePixelCNN(nn.Module):
    """The logits of ``p(k_n | k_<n)`` for every position ``n = i * width + j`` of codes ``(..., B, positions)``:
    ``(..., B, positions, K)``. The codes enter as ``K`` one-hot maps; ``layers`` gated layers of ``channels``
    maps with ``KERNEL``-wide convolutions (every earlier code is within reach of the last position once
    ``layers >= max(height, width) - 1``). Packed (its convolutions ``PackedConv``), each model's images read its
    own weights."""

    def __init__(self, height: int, width: int, k: int, channels: int, layers: int) -> None:
        super().__init__()
        self.height, self.width, self.k = height, width, k
        self.positions = height * width
        self.layers = nn.ModuleList(
            GatedLayer(k if n == 0 else channels, channels, KERNEL, first=n == 0) for n in range(layers)
        )
        self.to_logits = nn.Sequential(
            nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, k, 1)
        )
        nn.init.zeros_(self.to_logits[-1].weight)
        nn.init.zeros_(self.to_logits[-1].bias)

    def forward(self, codes: Tensor) -> Tensor:
        models = getattr(self.layers[0].vertical, "models", 1)  # a PackedConv's count; a plain layer's is one
        grouped = images_by_model(codes, models, 1) if models > 1 else codes  # (N, ..., b, positions)
        # each model's rows together, as a packed layer reads them
        grids = grouped.reshape(-1, self.height, self.width)
        vertical = horizontal = F.one_hot(grids, self.k).permute(0, 3, 1, 2).float()
        for layer in self.layers:
            vertical, horizontal = layer(vertical, horizontal)
        logits = self.to_logits(horizontal).flatten(2).transpose(1, 2).reshape(*grouped.shape, self.k)
        return images_in_turn(logits, 2) if models > 1 else logits
