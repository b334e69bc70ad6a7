"""The VampPrior: the mixture of the posteriors of K learned pseudo-inputs (Tomczak & Welling 2018)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.distributions import Categorical, Distribution

from vae_zoo.capabilities import CONTINUOUS
from vae_zoo.conditions.label import ABSENT
from vae_zoo.errors import ConfigError
from vae_zoo.priors.mixture import PackedUniformMixtures, mixture
from vae_zoo.priors.prior import Prior


class VampPrior(Prior):
    """``p(z) = 1/K sum_k q0(z | u_k)``: the model's own posterior (encoder and latent head; before any flow,
    whose density is only known at its own samples) at K pseudo-inputs ``u_k = sigmoid(v_k)``, images in [0, 1] learned with the model (``v`` initialised so that
    ``u ~ N(0.5, 0.01^2)``). Needs a continuous posterior; no closed-form KL (the one-sample estimate)."""

    requires = CONTINUOUS
    sizes = ("input_shape",)
    per_model_state = ("pseudo_inputs",)

    def __init__(self, input_shape: Sequence[int], components: int = 500) -> None:
        super().__init__()
        if components < 1:
            raise ConfigError(f"model.prior.components={components} must be >= 1")
        self.image_dims = len(input_shape)
        self.pseudo_inputs = nn.Parameter(torch.randn(components, *input_shape) * 0.04)

    def distribution(self, model) -> Distribution:
        """The mixture; a conditional model reads the pseudo-inputs with the zero condition (they have no label),
        so that this ``p(z)`` is the same for every class."""
        u = torch.sigmoid(self.pseudo_inputs)
        if u.dim() == 2 + self.image_dims and len(u) == 1:
            u = u[0]  # a pack of one: its model's own numbers
        with model.given(ABSENT):
            if u.dim() == 1 + self.image_dims:
                q = model.posterior(u, flow=False)  # batch of K
                return mixture(Categorical(logits=torch.zeros(len(u), device=u.device)), q)
            # packed, (N, K, ...): every model's pseudo-inputs through the packed encoder at once, each model's
            # images against its own K posteriors
            return PackedUniformMixtures(model.posterior(u.flatten(0, 1), flow=False), models=len(u))
