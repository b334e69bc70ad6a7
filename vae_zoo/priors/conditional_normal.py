"""The conditional prior ``p(z|y)`` of a conditional VAE: a diagonal Normal whose mean and scale depend on the label."""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution, Independent, Normal

from vae_zoo.capabilities import REAL
from vae_zoo.errors import ConfigError
from vae_zoo.priors.learned_normal import MIN_SCALE
from vae_zoo.priors.prior import Prior


class ConditionalNormalPrior(Prior):
    """``p(z|y) = N(m(y), diag s(y)^2)`` with ``(m(y), r(y)) = W c(y) + b`` and ``s = softplus(r) + 1e-5``, on the
    model's condition ``c(y)`` (``condition=label``: the one-hot class, so a mean and a scale learned per class, or
    its learned embedding): the prior network of Sohn et al. 2015, whose bounds stay bounds on ``-log p(x|y)``.
    Initialised at ``W = 0`` and ``N(0, I)``, the standard prior for every class; inputs without a label (the zero
    condition) get ``N(b)``. Needs a conditional model and a posterior on all of R^D; with a diagonal-Normal
    posterior the KL is torch's registered Normal-Normal closed form, per image against its own class's prior."""

    requires = REAL
    sizes = ("latent_features", "condition_features")

    def __init__(self, latent_features: int, condition_features: int | None) -> None:
        super().__init__()
        if condition_features is None:
            raise ConfigError(
                "prior=conditional_normal is p(z|y) and needs the label: add condition=label, or choose "
                "prior=learned_normal for an unconditional model"
            )
        self.net = nn.Linear(condition_features, 2 * latent_features)
        nn.init.zeros_(self.net.weight)
        nn.init.zeros_(self.net.bias[:latent_features])
        nn.init.constant_(self.net.bias[latent_features:], math.log(math.expm1(1 - MIN_SCALE)))

    def distribution(self, model) -> Distribution:
        """One Normal per image of the labels the model is given (``model.given``): batch shape ``(B,)``, or
        ``(1,)`` for the zero condition."""
        loc, raw_scale = self.net(model.condition_input(1)).chunk(2, dim=-1)
        return Independent(Normal(loc, F.softplus(raw_scale) + MIN_SCALE, validate_args=False), 1)
