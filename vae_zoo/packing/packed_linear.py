"""N linear layers as one: stacked weights and one batched matrix product (HFTA's horizontal fusion)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class PackedLinear(nn.Module):
    """``y_n = x_n W_n^T + b_n`` for the N models packed along the batch: the input's rows (its
    second-to-last dim) hold each model's rows in turn, ``(..., N * B, in)``; any dims before them are sample
    dims every model shares. ``weight`` is ``(N, out, in)`` and ``bias`` ``(N, out)``, so row ``n`` of the
    state dict is model ``n``'s ``nn.Linear`` state. ``mask`` (``(out, in)``, shared: MADE's connectivity)
    multiplies every weight."""

    def __init__(self, weight: Tensor, bias: Tensor | None, mask: Tensor | None = None) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias) if bias is not None else None
        self.register_buffer("mask", mask, persistent=False)

    @classmethod
    def stack(cls, layers: Sequence[nn.Linear]) -> PackedLinear:
        """One layer from N ``nn.Linear`` (or masked) layers of equal shape, their weights copied."""
        masks = [getattr(layer, "mask", None) for layer in layers]
        if masks[0] is not None and not all(torch.equal(m, masks[0]) for m in masks):
            raise ValueError("masked layers with different masks do not pack")
        with torch.no_grad():
            weight = torch.stack([layer.weight for layer in layers])
            bias = torch.stack([layer.bias for layer in layers]) if layers[0].bias is not None else None
        return cls(weight, bias, masks[0])

    @property
    def models(self) -> int:
        return self.weight.shape[0]

    def extra_repr(self) -> str:
        models, out_features, in_features = self.weight.shape
        return f"models={models}, in_features={in_features}, out_features={out_features}"

    def forward(self, x: Tensor) -> Tensor:
        weight = self.weight if self.mask is None else self.weight * self.mask
        *samples, rows, fan_in = x.shape
        if self.models == 1:  # one weight set: the plain layer's own kernel
            return nn.functional.linear(x, weight[0], None if self.bias is None else self.bias[0])
        per_model = rows // self.models
        # (S, N, B, in) -> (N, S * B, in): one matrix product per model, the sample dims folded into its rows
        x = x.reshape(-1, self.models, per_model, fan_in).transpose(0, 1).reshape(self.models, -1, fan_in)
        # computed as W x^T (+ b), with the weights as stored: x W^T made the CPU's batched product copy the
        # transposed weights in every pass (16 % of a packed DisARM step), the activations are smaller
        if self.bias is None:
            y = torch.bmm(weight, x.transpose(1, 2)).transpose(1, 2)
        else:
            y = torch.baddbmm(self.bias.unsqueeze(2), weight, x.transpose(1, 2)).transpose(1, 2)
        y = y.reshape(self.models, -1, per_model, y.shape[-1]).transpose(0, 1)
        return y.reshape(*samples, rows, y.shape[-1])
