"""D independent binary latents (the discrete-estimator literature's sigmoid belief layer)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Bernoulli, Independent, register_kl

from vae_zoo.errors import ConfigError
from vae_zoo.latents.family import LatentFamily, check_logit_prior


class LogitBernoulli(Bernoulli):
    """A Bernoulli given by its logit: the posterior and the prior of the Bernoulli family, which the KL
    registry knows by this class."""


@register_kl(LogitBernoulli, LogitBernoulli)
def kl_logit_bernoulli(q: LogitBernoulli, p: LogitBernoulli) -> Tensor:
    """``s(a)(log s(a) - log s(c)) + s(-a)(log s(-a) - log s(-c))`` per coordinate from the logits ``a`` of q and
    ``c`` of p (``s`` the logistic sigmoid, logs by ``logsigmoid``): torch's Bernoulli KL goes through the
    probabilities and masks where they round to 0 or 1 (``scripts/kl_speed.py``)."""
    a, c = q.logits, p.logits
    on, off = F.logsigmoid(a), F.logsigmoid(-a)
    return on.exp() * (on - F.logsigmoid(c)) + off.exp() * (off - F.logsigmoid(-c))


class BernoulliLatent(LatentFamily):
    """``q(z|x) = prod_d Bernoulli(z_d; sigmoid(a_d(x)))`` on ``{0, 1}^D``; ``p(z)`` Bernoulli(0.5) or learned
    logits ``c``.

    Closed-form KL per image from the logits (``kl_logit_bernoulli``). Exact samples are 0/1 floats; the
    decoder reads ``z`` as it is.
    """

    per_image_parameters = ("prior_logits",)

    def __init__(self, in_features: int, dim: int = 200, prior: str = "uniform") -> None:
        super().__init__(in_features)
        if dim < 1:
            raise ConfigError(f"model.latent.dim={dim} must be >= 1")
        check_logit_prior(prior)
        self.sample_features = dim
        self.head = nn.Linear(in_features, dim)
        self.register_prior_logits((dim,), prior)

    def posterior(self, features: Tensor) -> Independent:
        return Independent(LogitBernoulli(logits=self.head(features), validate_args=False), 1)

    def prior(self) -> Independent:
        return Independent(LogitBernoulli(logits=self.prior_logits, validate_args=False), 1)
