"""A mixture of K learned diagonal Gaussians as the prior."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Categorical, Distribution, Independent, Normal

from vae_zoo.capabilities import REAL
from vae_zoo.errors import ConfigError
from vae_zoo.priors.mixture import mixture
from vae_zoo.priors.prior import Prior


class MixtureOfGaussiansPrior(Prior):
    """``p(z) = sum_k pi_k N(z; m_k, diag s_k^2)``, K components with learned weights ``softmax(c)``, means
    (initialised from N(0, I)) and scales ``softplus(r) + 1e-4`` (initialised at 1). Needs a posterior on
    all of R^D; no closed-form KL (the one-sample estimate)."""

    per_image_parameters = ("logits", "means", "raw_scales")

    requires = REAL
    sizes = ("latent_features",)

    def __init__(self, latent_features: int, components: int = 10) -> None:
        super().__init__()
        if components < 1:
            raise ConfigError(f"model.prior.components={components} must be >= 1")
        self.logits = nn.Parameter(torch.zeros(components))
        self.means = nn.Parameter(torch.randn(components, latent_features))
        self.raw_scales = nn.Parameter(torch.full((components, latent_features), 0.5413))  # softplus: 1.0

    def distribution(self, model) -> Distribution:
        scales = F.softplus(self.raw_scales) + 1e-4
        components = Independent(Normal(self.means, scales, validate_args=False), 1)
        return mixture(Categorical(logits=self.logits), components)
