"""The likelihood contract: ``p(x|z)`` on the decoder's output, and the pixels it is a density of."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from vae_zoo.components import component_class
from vae_zoo.config_groups import option_name, options
from vae_zoo.errors import ConfigError

#: what a data module's pixels can be (``TensorDataModule.pixels``): 0/1, grey levels k/255 in [0, 1], or
#: grey levels uniformly dequantized to (k + u) / 256, u ~ U(0, 1) (continuous, for densities on [0, 1]); or
#: the rows of a table (``vae_zoo.data.table``)
PIXELS = ("binary", "8bit", "dequantized", "table")
#: how to make the data serve each kind of pixels
FIXES = {
    "binary": "binarize the data (data.binarize=dynamic)",
    "8bit": "serve the stored 8-bit levels (data.binarize=none data.dequantize=false)",
    "dequantized": "dequantize the 8-bit levels (data.binarize=none data.dequantize=true)",
    "table": "train on a table (data=table)",
}


class Likelihood(ABC, nn.Module):
    """``p(x|z)`` for images ``(C, H, W)``, parameterized by the decoder's output ``params``.

    The decoder is built to emit ``param_shape(input_shape)`` per image; ``params`` may carry leading
    sample dims over the batch of ``x``. Densities are per image (summed over pixels), in nats. A
    module, so a likelihood may hold parameters (a learned scale) that are trained and checkpointed.
    """

    #: the kinds of pixels (see ``PIXELS``) this is a normalized density of
    fits: tuple[str, ...]

    def param_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """The decoder's output shape per image; one parameter per pixel unless overridden."""
        return tuple(input_shape)

    @abstractmethod
    def nll(self, params: Tensor, x: Tensor) -> Tensor:
        """``-log p(x|z)`` per image (and per leading sample dim of ``params``)."""

    @abstractmethod
    def mean(self, params: Tensor) -> Tensor:
        """``E[x|z]``, shaped like the images (for reconstructions and samples)."""

    @abstractmethod
    def sample(self, params: Tensor) -> Tensor:
        """``x ~ p(x|z)``, shaped like the images."""

    def standardize(self, x: Tensor) -> Tensor:
        """The data as the encoder reads it: unchanged, unless the likelihood standardizes (a table's)."""
        return x

    def level_offset(self, pixels: str) -> float | None:
        """Nats per dimension that turn this likelihood's ``-log p`` of the data's ``pixels`` into a bound on
        ``-log P`` of the 8-bit levels, for bits per dimension: 0 for a pmf of the levels, ``ln 256`` for a
        density of their dequantization ``(k + u) / 256`` (the bin width 1/256; Theis et al. 2016); None where
        the pixels are not 8-bit levels or this is no distribution of them."""
        if pixels not in self.fits:
            return None
        return {"8bit": 0.0, "dequantized": math.log(256)}.get(pixels)

    def distribution(self, params: Tensor, input_shape: Sequence[int]) -> ImageDistribution:
        """``p(x|z)`` for the decoder's output ``params`` as a distribution over images of ``input_shape``."""
        return ImageDistribution(self, params, input_shape)

    def check_data(self, pixels: str) -> None:
        """Stop with one line when the data's pixels are not what this is a density of."""
        if pixels not in self.fits:
            raise ConfigError(self.misfit(pixels))

    def misfit(self, pixels: str) -> str:
        """The refusal for ``pixels``: what this fits, what the data serves, the likelihoods that fit it and
        how the data could serve what this fits."""
        return (
            f"{option_name('likelihood', self)} is a density of {' or '.join(self.fits)} pixels, but the data "
            f"serves {pixels} pixels -- choose one of {', '.join(fitting(pixels))} (or leave likelihood= "
            f"unset: the data's own is chosen), or {FIXES[self.fits[0]]}"
        )


class ImageDistribution(Distribution):
    """``p(x|z)`` as a ``torch.distributions`` object: images ``(C, H, W)`` as the event, the decoder output's
    leading dims (samples, images) as the batch; ``log_prob(x) = -nll(params, x)`` in nats per image."""

    arg_constraints: ClassVar[
        dict
    ] = {}  # its parameter is the decoder's output, whatever the likelihood reads

    def __init__(self, likelihood: Likelihood, params: Tensor, input_shape: Sequence[int]) -> None:
        self.likelihood, self.params = likelihood, params
        batch_shape = params.shape[: params.dim() - len(input_shape)]
        super().__init__(batch_shape, torch.Size(input_shape), validate_args=False)

    @property
    def mean(self) -> Tensor:
        return self.likelihood.mean(self.params)

    def log_prob(self, x: Tensor) -> Tensor:
        return -self.likelihood.nll(self.params, x)

    @torch.no_grad()
    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        params = self.params.expand(*sample_shape, *self.params.shape)
        return self.likelihood.sample(params)


def fitting(pixels: str) -> list[str]:
    """``likelihood=<option>`` for every option of ``conf/likelihood`` whose class is a density of ``pixels``."""
    return [
        f"likelihood={name}"
        for name, config in options("likelihood").items()
        if pixels in component_class(config, Likelihood, "model.likelihood").fits
    ]
