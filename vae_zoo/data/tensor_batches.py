"""Mini-batches sliced from image tensors that already live on the training device.

Replaces a DataLoader over per-sample ``__getitem__`` calls: one permutation per epoch, one index per
batch, and the per-batch transform (e.g. dynamic binarization) runs on the device. Under DDP each rank
takes every ``world_size``-th index of the shared permutation, padded by wrap-around as
``DistributedSampler`` does, so the ranks' shards are disjoint and together cover the data each epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor


class TensorBatches:
    """An iterable of batches ``transform(images[idx])``; reshuffled per epoch when ``shuffle``.

    The permutation of epoch ``e`` is drawn from a generator seeded with ``(seed, e)``, so it is the same
    on every rank and after a resume, and needs no state in the checkpoint.
    """

    def __init__(
        self,
        images: Tensor,
        batch_size: int,
        transform: Callable[[Tensor], Tensor],
        shuffle: bool = False,
        seed: int = 0,
        epoch: Callable[[], int] = lambda: 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.images = images
        self.batch_size = batch_size
        self.transform = transform
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = epoch
        self.rank = rank
        self.world_size = world_size

    def shard_indices(self) -> Tensor:
        """This rank's indices for the current epoch, on the images' device."""
        n = len(self.images)
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch())
            order = torch.randperm(n, generator=generator)
        else:
            order = torch.arange(n)
        if self.world_size > 1:
            padded = math.ceil(n / self.world_size) * self.world_size
            order = torch.cat([order, order[: padded - n]])[self.rank :: self.world_size]
        return order.to(self.images.device)

    def __len__(self) -> int:
        return math.ceil(math.ceil(len(self.images) / self.world_size) / self.batch_size)

    def __iter__(self) -> Iterator[Tensor]:
        for batch in self.shard_indices().split(self.batch_size):
            yield self.transform(self.images[batch])
