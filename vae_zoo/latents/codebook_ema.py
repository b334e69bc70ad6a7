"""The VQ-VAE codebook moved by exponential moving averages instead of its loss term (van den Oord et al. 2017,
appendix A.1; Razavi et al. 2019): an online k-means step per training batch.

With ``n_j`` the weight of the batch's encoder outputs whose nearest code is ``j`` and ``s_j`` their weighted sum,
and ``gamma`` the decay::

    N_j <- gamma N_j + (1 - gamma) n_j        M_j <- gamma M_j + (1 - gamma) s_j
    e_j  = M_j / N~_j,   N~_j = (N_j + eps) / (sum_i N_i + K eps) * sum_i N_i   (Laplace smoothing)

as Sonnet's ``VectorQuantizerEMA``, without its zero-debiasing (it divides ``N`` and ``M`` alike, so ``e`` changes
only through ``eps``). A code not chosen decays towards the origin (``M_j`` and ``N_j`` shrink alike until ``eps``
dominates). Under DDP the batch's ``n`` and ``s`` are summed over the processes first, so every process moves its
codebook alike. A model whose batch statistics are not finite keeps its codebook and averages this step.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from vae_zoo.packed_batch import images_by_model


def batch_statistics(encoded: Tensor, codes: Tensor, weights: Tensor | None, models: int, k: int) -> Tensor:
    """Per model ``(models, K, dim + 1)``: each code's weighted sum of the encoder outputs ``(B, positions, dim)``
    assigned to it (``codes`` ``(B, positions)``) and, last, their total weight (each image's ``weights`` ``(B,)``,
    else 1); the batch holds the packed models' images in turn."""
    dim = encoded.shape[-1]
    rows = images_by_model(encoded, models, 2).reshape(-1, dim)
    weight = (
        torch.ones_like(codes, dtype=encoded.dtype) if weights is None else weights[:, None].expand_as(codes)
    )
    weight = images_by_model(weight, models, 1).reshape(-1)
    offsets = torch.arange(models, device=codes.device)[:, None] * k
    index = (images_by_model(codes, models, 1).reshape(models, -1) + offsets).reshape(-1)
    weighted = torch.cat([rows * weight[:, None], weight[:, None]], -1)
    return encoded.new_zeros(models * k, dim + 1).index_add_(0, index, weighted).view(models, k, dim + 1)


def per_model_views(codebook: Tensor, counts: Tensor, sums: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """A codebook ``(K, dim)`` with its ``counts`` ``(K,)`` and ``sums`` ``(K, dim)``, or one of each per packed
    model, viewed with a leading model dim: ``(N, K, dim)``, ``(N, K)``, ``(N, K, dim)``."""
    models = len(codebook) if codebook.dim() == 3 else 1
    k, dim = codebook.shape[-2:]
    return codebook.view(models, k, dim), counts.view(models, k), sums.view(models, k, dim)


def move_codebook(
    codebook: Tensor,
    counts: Tensor,
    sums: Tensor,
    encoded: Tensor,
    codes: Tensor,
    weights: Tensor | None,
    decay: float,
    epsilon: float,
) -> Tensor:
    """One moving-average step, in place, of ``codebook`` ``(K, dim)`` with its averages ``counts`` ``(K,)`` and
    ``sums`` ``(K, dim)`` (or one of each per packed model, ``(N, K, dim)``, ``(N, K)``, ``(N, K, dim)``), from this
    batch's encoder outputs and their nearest codes. Returns whether each model's codebook moved, ``(N,)``: its
    batch statistics were finite."""
    codebook_, counts_, sums_ = per_model_views(codebook, counts, sums)
    models, k = counts_.shape
    statistics = batch_statistics(encoded.to(codebook.dtype), codes, weights, models, k)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(statistics)
    new_sums = decay * sums_ + (1 - decay) * statistics[..., :-1]
    new_counts = decay * counts_ + (1 - decay) * statistics[..., -1]
    total = new_counts.sum(-1, keepdim=True)
    smoothed = (new_counts + epsilon) / (total + k * epsilon) * total
    finite = statistics.isfinite().flatten(1).all(1)
    codebook_.copy_(torch.where(finite[:, None, None], new_sums / smoothed[..., None], codebook_))
    counts_.copy_(torch.where(finite[:, None], new_counts, counts_))
    sums_.copy_(torch.where(finite[:, None, None], new_sums, sums_))
    return finite
