"""Dead codes of the moving-average codebook restarted at the batch's encoder outputs (Dhariwal et al. 2020's
Jukebox; Williams et al. 2020).

A code whose average count ``N_j`` (the weight of encoder outputs it is chosen for per batch, moved as
``codebook_ema`` says) is below ``threshold`` is used too rarely to move: it is put at one of this batch's encoder
outputs ``z``, drawn with probability proportional to the output's image weight, and its averages restarted
there, ``e_j = z``, ``N_j = threshold``, ``M_j = threshold z``. Unless some output then chooses it, its count
decays below the threshold again and it is drawn anew next step.

Packed, each model's codes are restarted at its own images' outputs; a model whose batch was not finite is left
as it is. Under DDP the outputs of process 0 are drawn from and its codebook and averages are sent to every
process, which would otherwise each draw its own.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from vae_zoo.latents.codebook_ema import per_model_views
from vae_zoo.packed_batch import images_by_model


def restart_dead_codes(
    codebook: Tensor,
    counts: Tensor,
    sums: Tensor,
    encoded: Tensor,
    weights: Tensor | None,
    threshold: float,
    moved: Tensor,
) -> None:
    """In place: each code of ``codebook`` ``(K, dim)`` (or ``(N, K, dim)`` packed) whose ``counts`` are below
    ``threshold`` restarted at a row of ``encoded`` ``(B, positions, dim)`` (each image's ``weights`` ``(B,)``,
    else 1), in the models whose codebook ``moved`` ``(N,)`` this step."""
    codebook_, counts_, sums_ = per_model_views(codebook, counts, sums)
    models, k, dim = codebook_.shape
    rows = images_by_model(encoded.to(codebook.dtype), models, 2).reshape(models, -1, dim)
    image_weights = torch.ones(len(encoded), device=encoded.device) if weights is None else weights.float()
    row_weights = images_by_model(image_weights[:, None].expand(encoded.shape[:2]), models, 1).reshape(
        models, -1
    )
    # a model that did not move (its batch not finite) draws from equal weights, and keeps its codebook
    row_weights = torch.where(row_weights.isfinite() & (row_weights > 0), row_weights, 0)
    row_weights = torch.where(moved[:, None] & (row_weights.sum(1, keepdim=True) > 0), row_weights, 1)
    # a candidate for every code, so that the draws do not depend on which codes are dead (no host sync either)
    drawn = rows.take_along_dim(torch.multinomial(row_weights, k, replacement=True)[..., None], 1)
    restart = (counts_ < threshold) & moved[:, None]
    codebook_.copy_(torch.where(restart[..., None], drawn, codebook_))
    counts_.copy_(torch.where(restart, threshold, counts_))
    sums_.copy_(torch.where(restart[..., None], threshold * drawn, sums_))
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        for values in (codebook, counts, sums):
            dist.broadcast(values, src=0)
