"""An autoregressive prior over a VQ-VAE's codes: ``p(k) = prod_n p(k_n | k_<n)``, the logits of every position at
once from one masked network (MADE, Germain et al. 2015), in the positions' order.

The network reads the codes as one-hot vectors, ``positions * K`` inputs, through one hidden layer of ReLU units,
each unit of degree ``d`` in ``1 .. positions - 1`` seeing the codes at positions ``< d`` and the logits of position
``n`` seeing the units of degree ``<= n``: position 0's logits are the output bias alone, and every position's
depend on the earlier ones only. Its weights are one per packed model (``per_model_state``, ``(N, ...)``), each
model's images reading their own, as a VQ-VAE's codebook. The distribution, ``AutoregressiveCodePrior``, takes
this network or a PixelCNN over a code grid (``vae_zoo.latents.code_pixelcnn``).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, register_kl

from vae_zoo.latents.vector_quantized_distribution import (
    OnTheCodebook,
    VectorQuantized,
    code_vectors,
    codes_on_the_codebook,
)
from vae_zoo.packed_batch import images_by_model, images_in_turn


class CodeMADE(nn.Module):
    """The logits of ``p(k_n | k_<n)`` for every position ``n`` from the codes ``k`` ``(..., B, positions)``:
    ``(..., B, positions, K)``. The one-hot input layer is a sum of ``code_embeddings`` rows, one per position
    (``embedding_bag``), its weight stored one row per one-hot input ``(positions * K, hidden)``. It starts as the
    uniform prior (its output weight and bias zero)."""

    per_model_state = ("code_embeddings", "hidden_bias", "out_weight", "out_bias")

    def __init__(self, positions: int, k: int, hidden: int) -> None:
        super().__init__()
        self.positions, self.k = positions, k
        # a position's K inputs share its degree, 1 .. positions
        degree_in = (torch.arange(positions) + 1).repeat_interleave(k)
        degree_hidden = torch.arange(hidden) % max(positions - 1, 1) + 1
        self.register_buffer(
            "in_mask", (degree_hidden[None, :] >= degree_in[:, None]).float(), persistent=False
        )
        self.register_buffer(
            "out_mask", (degree_in[:, None] > degree_hidden[None, :]).float(), persistent=False
        )
        bound = 1 / math.sqrt(positions)  # the fan-in of a one-hot input: one active unit per position
        self.code_embeddings = nn.Parameter(torch.empty(positions * k, hidden).uniform_(-bound, bound))
        self.hidden_bias = nn.Parameter(torch.empty(hidden).uniform_(-bound, bound))
        self.out_weight = nn.Parameter(torch.zeros(positions * k, hidden))
        self.out_bias = nn.Parameter(torch.zeros(positions * k))

    def forward(self, codes: Tensor) -> Tensor:
        table = self.code_embeddings * self.in_mask  # (N, positions * K, hidden) packed
        models = len(table) if table.dim() == 3 else 1
        grouped = images_by_model(codes, models, 1) if models > 1 else codes  # (N, ..., b, positions)
        rows = grouped.reshape(models, -1, self.positions)
        # the table's row of each code: its model's block, its position's K rows, the code
        first = torch.arange(models * self.positions, device=codes.device).view(models, 1, -1) * self.k
        hidden = F.embedding_bag(
            (rows + first).reshape(-1, self.positions), table.reshape(-1, table.shape[-1]), mode="sum"
        )
        hidden = torch.relu(hidden.view(models, -1, table.shape[-1]) + self.hidden_bias.view(models, 1, -1))
        out = (self.out_weight * self.out_mask).view(models, self.positions * self.k, -1)
        logits = torch.baddbmm(self.out_bias.view(models, 1, -1), hidden, out.transpose(1, 2))
        logits = logits.view(*grouped.shape, self.k)
        return images_in_turn(logits, 2) if models > 1 else logits


class AutoregressiveCodePrior(Distribution):
    """``p(z) = prod_n p(k_n | k_<n)`` over the codebook vectors ``z_n = e_(k_n)``, the conditionals from
    ``network`` (a ``CodeMADE``, or a ``code_pixelcnn.CodePixelCNN`` over a code grid: codes ``(..., B,
    positions)`` to logits ``(..., B, positions, K)``). ``log_prob`` finds a matrix's codes (``-inf`` off the
    codebook); ``sample`` draws the positions in order, one network pass each."""

    arg_constraints: ClassVar[dict] = {}  # validation is off: the codes are computed, not given

    def __init__(self, network: nn.Module, codebook: Tensor) -> None:
        self.network, self.codebook = network, codebook
        super().__init__(
            torch.Size(), torch.Size((network.positions, codebook.shape[-1])), validate_args=False
        )

    @property
    def support(self) -> OnTheCodebook:
        return OnTheCodebook(self.codebook.detach())

    def log_prob_of_codes(self, codes: Tensor) -> Tensor:
        """``sum_n log p(k_n | k_<n)`` of codes ``(..., B, positions)``."""
        log_probs = self.network(codes).log_softmax(-1)
        return log_probs.gather(-1, codes.unsqueeze(-1)).squeeze(-1).sum(-1)

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        """Packed, the draws are the models' rows in turn (``sample_shape`` ``(N * B,)``)."""
        with torch.no_grad():
            rows = math.prod(sample_shape)
            codes = torch.zeros(rows, self.network.positions, dtype=torch.long, device=self.codebook.device)
            for n in range(self.network.positions):
                logits = self.network(codes)[:, n]
                codes[:, n] = Categorical(logits=logits, validate_args=False).sample()
            return code_vectors(codes, self.codebook).view(*sample_shape, *self.event_shape)

    def log_prob(self, value: Tensor) -> Tensor:
        codes, on_the_codebook = codes_on_the_codebook(value, self.codebook.detach())
        return torch.where(on_the_codebook, self.log_prob_of_codes(codes), -math.inf)


@register_kl(VectorQuantized, AutoregressiveCodePrior)
def kl_vector_quantized_autoregressive(q: VectorQuantized, p: AutoregressiveCodePrior) -> Tensor:
    """``KL(delta_k || p) = -sum_n log p(k_n | k_<n)`` per image."""
    return -p.log_prob_of_codes(q.codes)
