"""Mini-batches sliced from image tensors that already live on the training device.

Replaces a DataLoader over per-sample ``__getitem__`` calls: one permutation per epoch, one index per
batch, and the per-batch transform (e.g. dynamic binarization) runs on the device. Images too large
for the device stay in host memory and each batch is gathered there and copied (pinned) to the device
before the same transform, with the same generator: the batches equal the resident path's. Under DDP each rank
takes every ``world_size``-th index of the shared permutation, padded by wrap-around as
``DistributedSampler`` does, so the ranks' shards are disjoint and together cover the data each epoch.

With ``labels`` (a conditional model's data) each batch is the pair ``(images, labels)``: the same rows of both.
With ``labelled`` (semi-supervised data: the indices of the training images whose labels are kept) each batch
also takes ``labelled_per_batch`` of those, drawn with replacement, after its own rows.

Everything random here is a function of (seed, epoch, batch, rank): the permutation, and the generator
handed to the transform. A batch is therefore the same whatever else consumed random numbers before it,
and after a resume mid-epoch (``state_dict`` / ``load_state_dict``) the remaining batches are exactly
those an uninterrupted run would have drawn.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor


def images_and_labels(batch: Tensor | tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor | None]:
    """A batch's images and its class labels (None where the batches carry none)."""
    return (batch[0], batch[1]) if isinstance(batch, tuple | list) else (batch, None)


class TensorBatches:
    """An iterable of batches ``transform(images[idx])``, or ``(transform(images[idx]), labels[idx])`` with
    ``labels``; reshuffled per epoch when ``shuffle``.

    The permutation of epoch ``e`` is drawn from a generator seeded with ``(seed, e)``, so it is the same
    on every rank and after a resume, and needs no state in the checkpoint.
    """

    def __init__(
        self,
        images: Tensor,
        batch_size: int,
        transform: Callable[[Tensor, torch.Generator], Tensor],
        shuffle: bool = False,
        seed: int = 0,
        epoch: Callable[[], int] = lambda: 0,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | None = None,
        labels: Tensor | None = None,
        labelled: Tensor | None = None,
        labelled_per_batch: int = 0,
    ) -> None:
        self.images = images
        self.labels = labels
        self.labelled = labelled
        self.labelled_per_batch = labelled_per_batch
        # host-resident images stream to it batch by batch; "cuda" is resolved to its index ("cuda:0")
        self.device = torch.empty(0, device=device).device if device is not None else images.device
        self.batch_size = batch_size
        self.transform = transform
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = epoch
        self.rank = rank
        self.world_size = world_size
        self._yielded = 0  # batches handed out in the current pass
        self._resume: tuple[int, int] | None = None  # (epoch, batches to skip) from load_state_dict

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
        return order.to(self.images.device)  # indices live with the images

    def __len__(self) -> int:
        return math.ceil(math.ceil(len(self.images) / self.world_size) / self.batch_size)

    def _seed(self, epoch: int, batch: int) -> int:
        return (((self.seed * 1_000_003 + epoch) * 1_000_003 + batch) * 8191 + self.rank) % 2**63

    def _generator(self, epoch: int, batch: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(self._seed(epoch, batch))

    def _with_labelled(self, batch: Tensor, epoch: int, index: int) -> Tensor:
        """``batch``'s indices and ``labelled_per_batch`` of the kept-label images', drawn from (seed, epoch,
        batch, rank) on the host."""
        generator = torch.Generator().manual_seed((self._seed(epoch, index) + 1) % 2**63)
        pick = torch.randint(len(self.labelled), (self.labelled_per_batch,), generator=generator)
        return torch.cat([batch, self.labelled[pick.to(self.labelled.device)]])

    def __iter__(self) -> Iterator[Tensor | tuple[Tensor, Tensor]]:
        epoch = self.epoch()
        skip = self._resume[1] if self._resume is not None and self._resume[0] == epoch else 0
        self._resume, self._yielded = None, skip
        for index, batch in enumerate(self.shard_indices().split(self.batch_size)):
            if index < skip:
                continue
            self._yielded = index + 1
            if self.labelled is not None:
                batch = self._with_labelled(batch, epoch, index)
            images = self.images[batch]
            if images.device != self.device:  # streaming: gather on the host, copy, transform on the device
                pinned = images.pin_memory() if self.device.type == "cuda" else images
                images = pinned.to(self.device, non_blocking=True)
            x = self.transform(images, self._generator(epoch, index))
            yield x if self.labels is None else (x, self.labels[batch].to(self.device, non_blocking=True))

    def state_dict(self) -> dict[str, int]:
        """Position in the epoch, saved in Lightning checkpoints. For a sized iterable Lightning fetches a
        batch only when it is about to train on it, so the batches handed out are the batches trained."""
        return {"epoch": self.epoch(), "batches_done": self._yielded}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume = (state["epoch"], state["batches_done"])
