"""A diagonal Normal prior with a learned mean and scale per coordinate."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution, Independent, Normal

from vae_zoo.capabilities import REAL
from vae_zoo.priors.prior import Prior

MIN_SCALE = 1e-5


class LearnedNormalPrior(Prior):
    """``p(z) = N(m, diag s^2)`` with ``m`` and ``s = softplus(r) + 1e-5`` learned per coordinate, initialised at
    ``N(0, I)``. Needs a posterior on all of R^D. With a diagonal-Normal posterior the KL is closed-form, torch's
    registered Normal-Normal KL ``log(s / sigma) + (sigma^2 + (mu - m)^2) / (2 s^2) - 1/2`` per coordinate, found
    in the registry when the model is built; with other posteriors on R^D (two layers, flows) the one-sample
    estimate."""

    per_image_parameters = ("loc", "raw_scale")

    requires = REAL
    sizes = ("latent_features",)

    def __init__(self, latent_features: int) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(latent_features))
        self.raw_scale = nn.Parameter(torch.full((latent_features,), math.log(math.expm1(1 - MIN_SCALE))))

    def distribution(self, model) -> Distribution:
        scale = F.softplus(self.raw_scale) + MIN_SCALE
        return Independent(Normal(self.loc, scale, validate_args=False), 1)
