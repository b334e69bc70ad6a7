"""A mixture of discretized logistics per pixel (Salimans et al. 2017, PixelCNN++), for 8-bit images."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from vae_zoo.errors import ConfigError
from vae_zoo.likelihoods.likelihood import Likelihood

BINS = 255  # 8-bit levels k = 0..255 sit at y = 2k/255 - 1 in [-1, 1], bins of half-width 1/255
MIN_LOG_SCALE = -7.0


class DiscretizedLogisticLikelihood(Likelihood):
    """``P(k) = sum_j pi_j [S((y + 1/255 - mu_j) / s_j) - S((y - 1/255 - mu_j) / s_j)]`` per pixel and
    channel, ``S`` the logistic sigmoid, with the edge bins open to infinity (``S(+inf) = 1`` at k = 255,
    ``S(-inf) = 0`` at k = 0), so the 256 probabilities sum to 1. Channels are modelled independently
    (PixelCNN++ couples RGB autoregressively; a VAE's decoder sees z instead). The decoder emits
    ``3 * components`` maps per channel: mixture logits, means and log scales (floored at -7). A
    probability mass function of 8-bit pixels: its negative log-likelihood in nats / (D ln 2) is bits/dim.
    Where a bin's mass underflows (< 1e-5) the density at its centre times the bin width stands in.
    """

    fits = ("8bit",)

    def __init__(self, components: int = 5) -> None:
        super().__init__()
        if components < 1:
            raise ConfigError(f"model.likelihood.components={components} must be >= 1")
        self.components = components

    def param_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        channels, *size = input_shape
        return (3 * self.components * channels, *size)

    def _split(self, params: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Mixture log-weights, means and log scales, each ``(..., C, K, H, W)``."""
        parts = params.unflatten(-3, (-1, 3, self.components))
        logits, loc, log_scale = parts.unbind(-4)
        return logits.log_softmax(-3), loc, log_scale.clamp_min(MIN_LOG_SCALE)

    def log_prob_per_pixel(self, params: Tensor, x: Tensor) -> Tensor:
        log_weights, loc, log_scale = self._split(params)
        y = (2 * x - 1).unsqueeze(-3)  # (..., C, 1, H, W)
        centred, inv_scale = y - loc, torch.exp(-log_scale)
        upper, lower = inv_scale * (centred + 1 / BINS), inv_scale * (centred - 1 / BINS)
        log_cdf_upper = upper - F.softplus(upper)  # log S(upper), for k = 0
        log_survival_lower = -F.softplus(lower)  # log (1 - S(lower)), for k = 255
        mass = torch.sigmoid(upper) - torch.sigmoid(lower)
        middle = inv_scale * centred
        log_density_mid = middle - log_scale - 2 * F.softplus(middle) - math.log(BINS / 2)
        interior = torch.where(mass > 1e-5, torch.log(mass.clamp_min(1e-12)), log_density_mid)
        log_bin = torch.where(y < -0.999, log_cdf_upper, torch.where(y > 0.999, log_survival_lower, interior))
        return torch.logsumexp(log_weights + log_bin, dim=-3)

    def nll(self, params: Tensor, x: Tensor) -> Tensor:
        return -self.log_prob_per_pixel(params, x).flatten(-3).sum(-1)

    def mean(self, params: Tensor) -> Tensor:
        log_weights, loc, _ = self._split(params)
        return ((log_weights.exp() * loc).sum(-3).clamp(-1, 1) + 1) / 2

    def sample(self, params: Tensor) -> Tensor:
        log_weights, loc, log_scale = self._split(params)
        choice = F.one_hot(
            torch.distributions.Categorical(logits=log_weights.movedim(-3, -1)).sample(), self.components
        ).movedim(-1, -3)
        u = torch.rand_like(loc).clamp(1e-5, 1 - 1e-5)
        y = ((loc + torch.exp(log_scale) * (torch.log(u) - torch.log1p(-u))) * choice).sum(-3)
        return torch.round((y.clamp(-1, 1) + 1) / 2 * BINS) / BINS
