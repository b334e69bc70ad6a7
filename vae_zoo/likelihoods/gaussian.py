"""Gaussian observation model for continuous (dequantized) pixels."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from vae_zoo.errors import ConfigError
from vae_zoo.likelihoods.likelihood import Likelihood

SCALES = ("fixed", "pixel")
MIN_SIGMA = 1e-3


class GaussianLikelihood(Likelihood):
    """``-log p(x|z) = sum_pixels (x - mu)^2 / (2 sigma^2) + log sigma + log(2 pi) / 2``, ``mu`` the decoder
    output; ``scale: fixed`` uses ``sigma``, ``scale: pixel`` has the decoder emit a second map ``s`` per
    pixel with ``sigma = softplus(s) + 1e-3`` (learned, heteroscedastic). A density on the real line: of
    8-bit images only after uniform dequantization (``data.dequantize=true``), where ``nll + D ln 256`` bounds
    the discrete negative log-likelihood.
    """

    fits = ("dequantized",)

    def __init__(self, scale: str = "pixel", sigma: float = 0.1) -> None:
        super().__init__()
        if scale not in SCALES:
            raise ConfigError(f"model.likelihood.scale={scale!r} is not one of {', '.join(SCALES)}")
        if sigma <= 0:
            raise ConfigError(f"model.likelihood.sigma={sigma} must be > 0")
        self.scale, self.sigma = scale, sigma

    def param_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        channels, *size = input_shape
        return (2 * channels if self.scale == "pixel" else channels, *size)

    def _loc_and_log_sigma(self, params: Tensor) -> tuple[Tensor, Tensor]:
        if self.scale == "fixed":
            return params, torch.full_like(params, math.log(self.sigma))
        loc, raw = params.chunk(2, dim=-3)
        return loc, torch.log(F.softplus(raw) + MIN_SIGMA)

    def nll(self, params: Tensor, x: Tensor) -> Tensor:
        loc, log_sigma = self._loc_and_log_sigma(params)
        z = (x - loc) * torch.exp(-log_sigma)
        return (0.5 * z.square() + log_sigma + 0.5 * math.log(2 * math.pi)).flatten(-3).sum(-1)

    def mean(self, params: Tensor) -> Tensor:
        return self._loc_and_log_sigma(params)[0]

    def sample(self, params: Tensor) -> Tensor:
        loc, log_sigma = self._loc_and_log_sigma(params)
        return loc + torch.exp(log_sigma) * torch.randn_like(loc)
