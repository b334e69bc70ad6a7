"""The total correlation of the aggregate posterior, estimated on a batch (Chen et al. 2018's beta-TCVAE).

With ``q(z) = (1/N) sum_n q(z|x_n)`` the aggregate posterior over the ``N`` training images and ``q(z_u)`` its
marginal in latent unit ``u``, the ELBO's mean KL is the index-code mutual information, plus the total
correlation ``TC = E_q(z)[log q(z) - sum_u log q(z_u)]``, plus the units' own ``KL(q(z_u) || p(z_u))``; beta-TCVAE
weighs the TC alone. A batch of ``M`` images (image ``i`` and ``M - 1`` others drawn without replacement)
estimates ``q(z_i)`` at image ``i``'s sample by minibatch stratified sampling,

    q^(z_i) = (1/N) q(z_i|x_i) + (N - 1) / (N (M - 1)) sum_{j != i} q(z_i|x_j),

unbiased for ``q(z_i)``, and exact where the batch is the whole training set (``M = N``); each unit's ``q^(z_iu)``
alike from that unit's densities. Image ``i``'s estimate is ``TC_i = log q^(z_i) - sum_u log q^(z_iu)`` (the log
of an unbiased estimate, so biased, as Chen et al.'s). Packed models (``vae_zoo.packing``) each estimate from
their own images.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from vae_zoo.errors import ConfigError


def log_aggregate(pairs: Tensor, training_images: int) -> Tensor:
    """``log q^(z_i)`` per image ``i`` from ``log q(z_i|x_j)`` of a batch's images, ``(..., M, M)`` (``i`` along
    the rows, ``j`` the columns): the log-sum of the densities weighted ``1/N`` on the diagonal (the image's own
    posterior) and ``(N - 1) / (N (M - 1))`` off it."""
    m, n = pairs.shape[-1], training_images
    if m < 2:
        raise ConfigError(
            "objective.tc_weight estimates the aggregate posterior from the other images of a batch, and this "
            "batch holds one image per model -- set data.batch_size >= 2 (and drop a one-image last batch)"
        )
    off_diagonal = math.log(n - 1) - math.log(n) - math.log(m - 1)
    log_weights = torch.full((m, m), off_diagonal, dtype=pairs.dtype, device=pairs.device)
    log_weights.fill_diagonal_(-math.log(n))
    return torch.logsumexp(pairs + log_weights, dim=-1)


def total_correlation(
    unit_log_probs: Callable[[Tensor], Tensor], z: Tensor, models: int, training_images: int
) -> Tensor:
    """``TC_i`` per image ``(B,)`` at the batch's samples ``z`` ``(B, units, ...)``, from ``unit_log_probs(values)``:
    ``log q(value_u | x_j)`` of every image ``j``'s posterior in each unit ``u``, ``(..., B, units)`` for
    ``values`` ``(..., B, units, ...)`` broadcast against the batch. Packed, the batch holds ``models`` models'
    images in turn, and each image's estimate is from its own model's images."""
    rows = len(z) // models
    # values[i, (m, j)] = z of model m's image i, against image (m, j)'s posterior: each model's own block of
    # pairs alone (rows * B evaluations, not B * B), as (models, rows_i, rows_j, units)
    own = z.unflatten(0, (models, rows)).transpose(0, 1).unsqueeze(2)  # (rows_i, models, 1, units, ...)
    values = own.expand(-1, -1, rows, *z.shape[1:]).flatten(1, 2)
    pairs = unit_log_probs(values).unflatten(1, (models, rows)).transpose(0, 1)
    joint = log_aggregate(pairs.sum(-1), training_images)
    marginals = log_aggregate(pairs.movedim(-1, 1), training_images).sum(1)
    return (joint - marginals).flatten()
