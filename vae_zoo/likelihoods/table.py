"""A likelihood for the rows of a table: a Gaussian per real column, a Bernoulli per 0/1 column.

The model standardizes each real column, ``u_j = (x_j - m_j) / s_j`` with the training rows' mean and standard
deviation (``TableDataModule.columns``, kept as buffers so checkpoints carry them), and per row

    -log p(x|z) = sum_real [ (u_j - mu_j)^2 / (2 sigma_j^2) + log sigma_j + log(2 pi) / 2 + log s_j ]
                + sum_binary [ -x_j log sigmoid(l_j) - (1 - x_j) log sigmoid(-l_j) ]

with ``mu_j`` and the logits ``l_j`` the decoder's outputs and ``sigma_j`` learned per column: the density of
the row in its own units (``+ log s_j``: the standardization's Jacobian), in nats. Means and samples are in the
data's units too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vae_zoo.data.table import Columns
from vae_zoo.likelihoods.likelihood import Likelihood


class TableLikelihood(Likelihood):
    """Gaussian (per-column learned ``sigma``, initially 1 in standardized units) for real columns and Bernoulli
    for binary ones, of rows ``(1, 1, F)``; ``adopt`` takes the columns' kinds and statistics from the data."""

    fits = ("table",)
    sizes = ("input_shape",)

    def __init__(self, input_shape: Sequence[int]) -> None:
        super().__init__()
        shape = tuple(input_shape)  # a table's (1, 1, F); any shape works, one entry per feature
        self.register_buffer("binary", torch.zeros(shape, dtype=torch.bool))
        self.register_buffer("means", torch.zeros(shape))
        self.register_buffer("scales", torch.ones(shape))
        self.log_sigma = nn.Parameter(torch.zeros(shape))

    def adopt(self, columns: Columns) -> None:
        """The data's column kinds and the training rows' means and scales (before training)."""
        with torch.no_grad():
            self.binary.copy_(columns.binary.reshape(self.binary.shape))
            self.means.copy_(columns.means.reshape(self.means.shape))
            self.scales.copy_(columns.scales.reshape(self.scales.shape))

    def standardize(self, x: Tensor) -> Tensor:
        """Rows in the data's units to the model's: real columns standardized, binary ones as they are."""
        return (x - self.means) / self.scales

    def nll(self, params: Tensor, x: Tensor) -> Tensor:
        u = self.standardize(x)
        gaussian = 0.5 * ((u - params) * torch.exp(-self.log_sigma)).square()
        gaussian = gaussian + self.log_sigma + 0.5 * math.log(2 * math.pi) + torch.log(self.scales)
        bernoulli = F.binary_cross_entropy_with_logits(params, x.expand_as(params), reduction="none")
        return torch.where(self.binary, bernoulli, gaussian).flatten(-3).sum(-1)

    def mean(self, params: Tensor) -> Tensor:
        return torch.where(self.binary, torch.sigmoid(params), self.means + self.scales * params)

    def sample(self, params: Tensor) -> Tensor:
        real = self.means + self.scales * (params + torch.exp(self.log_sigma) * torch.randn_like(params))
        return torch.where(self.binary, torch.bernoulli(torch.sigmoid(params)), real)
