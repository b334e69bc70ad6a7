"""The VampPrior: the mixture of the posteriors of K learned pseudo-inputs (Tomczak & Welling 2018)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.distributions import Categorical, Distribution

from vae_zoo.capabilities import CONTINUOUS
from vae_zoo.errors import ConfigError
from vae_zoo.priors.mixture import mixture
from vae_zoo.priors.prior import Prior


class VampPrior(Prior):
    """``p(z) = 1/K sum_k q0(z | u_k)``: the model's own posterior (encoder and latent head; before any flow,
    whose density is only known at its own samples) at K pseudo-inputs ``u_k = sigmoid(v_k)``, images in [0, 1] learned with the model (``v`` initialised so that
    ``u ~ N(0.5, 0.01^2)``). Needs a continuous posterior; no closed-form KL (the one-sample estimate)."""

    requires = CONTINUOUS
    sizes = ("input_shape",)

    def __init__(self, input_shape: Sequence[int], components: int = 500) -> None:
        super().__init__()
        if components < 1:
            raise ConfigError(f"model.prior.components={components} must be >= 1")
        self.pseudo_inputs = nn.Parameter(torch.randn(components, *input_shape) * 0.04)

    def distribution(self, model) -> Distribution:
        q = model.posterior(torch.sigmoid(self.pseudo_inputs), flow=False)  # batch of K
        weights = Categorical(logits=torch.zeros(len(self.pseudo_inputs), device=self.pseudo_inputs.device))
        return mixture(weights, q)
