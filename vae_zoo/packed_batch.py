"""A batch that may hold N packed models' images in turn (``vae_zoo.packing``): per-model reductions over it,
and per-model values and parameters spread over it. With one model each is the plain operation, so an unpacked
run's numbers are those it always had."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import Tensor, nn


def per_model(per_image: Tensor, models: int) -> Tensor:
    """``(..., N * B)`` values (any sample dims before the images) as one row per model, ``(N, ... * B)``."""
    return per_image.unflatten(-1, (models, -1)).movedim(-2, 0).flatten(1)


def images_by_model(values: Tensor, models: int, trailing: int) -> Tensor:
    """``values`` ``(..., N * B, *trail)``, ``trailing`` dims after the images, as ``(N, ..., B, *trail)``: each
    model's images together (what a computation per model reads, e.g. with its own VQ-VAE codebook)."""
    return values.unflatten(-1 - trailing, (models, -1)).movedim(-2 - trailing, 0)


def images_in_turn(grouped: Tensor, trailing: int) -> Tensor:
    """The inverse of ``images_by_model``: ``(N, ..., B, *trail)`` as ``(..., N * B, *trail)``."""
    return grouped.movedim(0, -2 - trailing).flatten(-2 - trailing, -1 - trailing)


def batch_mean(per_image: Tensor, models: int = 1) -> Tensor:
    """The mean over the images and any sample dims before them: a scalar; packed, one per model, ``(N,)``."""
    return per_image.mean() if models == 1 else per_model(per_image, models).mean(1)


def batch_variance(per_image: Tensor, models: int = 1) -> Tensor:
    """The (biased) variance over the images and any sample dims: a scalar; packed, one per model, ``(N,)``."""
    return (
        per_image.var(unbiased=False) if models == 1 else per_model(per_image, models).var(1, unbiased=False)
    )


def differs_from(setting: Tensor | float, off: float) -> bool:
    """Whether a setting that packed models may each have their own of is on: a number other than ``off``, or one
    value per model (a tensor, set only where the models' values differ, so that one of them is not ``off``)."""
    return isinstance(setting, Tensor) or setting != off


def per_image(state: Tensor | float, images: int) -> Tensor | float:
    """A scalar that packed models hold one each of, ``(N,)``, as model ``n``'s value on each of its images
    (``(images,)``, the batch holding every model's in turn); unpacked (a number or a 0-dim tensor), or already one
    per image, ``state`` itself."""
    if not isinstance(state, Tensor) or state.dim() == 0:
        return state
    if len(state) == 1:
        return state[0]
    return state if len(state) == images else state.repeat_interleave(images // len(state))


@contextlib.contextmanager
def per_image_copies(model: nn.Module, rows: int) -> Iterator[None]:
    """Inside: each stacked per-image parameter ``(N, ...)`` of a packed model (its ``per_image_parameters``)
    read as its rows ``(N * rows, ...)``, model ``n``'s copy on each of its ``rows`` images (one model: its own
    copy, unexpanded, as unpacked). The copies are a function of the stacked parameter, so gradients reach it.
    Nested, the inner rows hold while inside it (a computation on several rows per image)."""
    owners = [model.get_submodule(key.rpartition(".")[0]) for key in model.per_image_parameters]
    names = [key.rpartition(".")[2] for key in model.per_image_parameters]
    # an instance attribute shadows the registered parameter, which stays in place (state dict, optimizer)
    outer = [owner.__dict__.get(name) for owner, name in zip(owners, names)]
    try:
        for owner, name in zip(owners, names):
            parameter = owner._parameters[name]
            owner.__dict__[name] = parameter[0] if model.models == 1 else parameter.repeat_interleave(rows, 0)
        yield
    finally:
        for owner, name, copies in zip(owners, names, outer):
            if copies is None:
                del owner.__dict__[name]
            else:
                owner.__dict__[name] = copies
