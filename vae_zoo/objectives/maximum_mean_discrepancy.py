"""The maximum mean discrepancy between the aggregate posterior and the prior (InfoVAE, Zhao et al. 2019).

``MMD^2(q, p) = E k(z, z') + E k(y, y') - 2 E k(z, y)`` for ``z, z'`` independent draws of the aggregate posterior
``q(z) = E_x q(z|x)`` and ``y, y'`` of the prior, with the Gaussian kernel ``k(a, b) = exp(-|a - b|^2 / (2 D h^2))``
over the ``D`` latent coordinates (bandwidth ``h``; pythae's ``rbf``). A batch's training samples ``z_1..z_M``
(one per image) and ``M`` prior draws ``y_1..y_M`` estimate it without bias by the U-statistic

    (1 / (M (M - 1))) sum_{i != j} [k(z_i, z_j) + k(y_i, y_j)] - (2 / M^2) sum_{i, j} k(z_i, y_j)

(Gretton et al. 2012), which can be negative where q and p are close. Packed models (``vae_zoo.packing``) each
compare their own images' samples with their own prior's draws.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vae_zoo.errors import ConfigError


def gaussian_kernel(a: Tensor, b: Tensor, bandwidth: float) -> Tensor:
    """``exp(-|a_i - b_j|^2 / (2 D h^2))`` for every pair of rows, ``(..., M, D)`` and ``(..., M', D)`` to
    ``(..., M, M')``."""
    squared = (
        (a.unsqueeze(-2) - b.unsqueeze(-3)).square().sum(-1)
    )  # exact, and differentiable where a_i = b_j
    return torch.exp(-squared / (2 * a.shape[-1] * bandwidth**2))


def mmd_squared(z: Tensor, y: Tensor, models: int, bandwidth: float) -> Tensor:
    """The U-statistic of ``MMD^2`` per model, ``(models,)`` (a scalar for one), between the posterior samples ``z`` and the prior draws
    ``y``, both ``(B, ...)`` (flattened to the ``D`` latent coordinates), the batch holding ``models`` models' rows
    in turn."""
    z, y = (t.flatten(1).unflatten(0, (models, -1)) for t in (z, y))
    m = z.shape[1]
    if m < 2:
        raise ConfigError(
            "objective.mmd_weight compares a batch's samples with one another, and this batch holds one image per "
            "model -- set data.batch_size >= 2 (and drop a one-image last batch)"
        )
    off_diagonal = 1 - torch.eye(m, dtype=z.dtype, device=z.device)
    within = (gaussian_kernel(z, z, bandwidth) + gaussian_kernel(y, y, bandwidth)) * off_diagonal
    between = gaussian_kernel(z, y, bandwidth)
    values = within.sum((-2, -1)) / (m * (m - 1)) - 2 * between.mean((-2, -1))
    return values[0] if models == 1 else values  # as ``batch_mean``: a scalar unpacked
