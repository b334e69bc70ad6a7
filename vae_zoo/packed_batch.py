"""A batch that may hold N packed models' images in turn (``vae_zoo.packing``): per-model reductions over it,
and per-model values spread over it. With one model each is the plain operation, so an unpacked run's
numbers are those it always had."""

from __future__ import annotations

from torch import Tensor


def per_model(per_image: Tensor, models: int) -> Tensor:
    """``(..., N * B)`` values (any sample dims before the images) as one row per model, ``(N, ... * B)``."""
    return per_image.unflatten(-1, (models, -1)).movedim(-2, 0).flatten(1)


def batch_mean(per_image: Tensor, models: int = 1) -> Tensor:
    """The mean over the images and any sample dims before them: a scalar; packed, one per model, ``(N,)``."""
    return per_image.mean() if models == 1 else per_model(per_image, models).mean(1)


def batch_variance(per_image: Tensor, models: int = 1) -> Tensor:
    """The (biased) variance over the images and any sample dims: a scalar; packed, one per model, ``(N,)``."""
    return (
        per_image.var(unbiased=False) if models == 1 else per_model(per_image, models).var(1, unbiased=False)
    )


def per_image(state: Tensor, images: int) -> Tensor:
    """A scalar that packed models hold one each of, ``(N,)``, as model ``n``'s value on each of its images
    (``(images,)``, the batch holding every model's in turn); unpacked (a 0-dim tensor), the scalar itself."""
    if state.dim() == 0:
        return state
    return state[0] if len(state) == 1 else state.repeat_interleave(images // len(state))
