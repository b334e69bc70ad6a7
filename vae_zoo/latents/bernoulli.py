"""D independent binary latents (the discrete-estimator literature's sigmoid belief layer)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Bernoulli, Independent

from vae_zoo.errors import ConfigError
from vae_zoo.latents.family import LatentFamily

PRIORS = ("uniform", "learned")


class BernoulliLatent(LatentFamily):
    """``q(z|x) = prod_d Bernoulli(z_d; sigmoid(a_d(x)))`` on ``{0, 1}^D``; ``p(z)`` Bernoulli(0.5) or learned
    logits ``c``.

    Closed-form KL per image, from logits (stable for any ``a``, ``c``):
    ``sum_d s(a)(log s(a) - log s(c)) + s(-a)(log s(-a) - log s(-c))``, ``s`` the logistic sigmoid. Exact
    samples are 0/1 floats; the decoder reads ``z`` as it is.
    """

    def __init__(self, in_features: int, dim: int = 200, prior: str = "uniform") -> None:
        super().__init__(in_features)
        if dim < 1:
            raise ConfigError(f"model.latent.dim={dim} must be >= 1")
        if prior not in PRIORS:
            raise ConfigError(f"model.latent.prior={prior!r} is not one of {', '.join(PRIORS)}")
        self.sample_features = dim
        self.head = nn.Linear(in_features, dim)
        logits = torch.zeros(dim)
        if prior == "learned":
            self.prior_logits = nn.Parameter(logits)
        else:
            self.register_buffer("prior_logits", logits, persistent=False)

    def posterior(self, features: Tensor) -> Independent:
        return Independent(Bernoulli(logits=self.head(features), validate_args=False), 1)

    def prior(self) -> Independent:
        return Independent(Bernoulli(logits=self.prior_logits, validate_args=False), 1)

    def kl(self, q: Independent) -> Tensor:
        a, c = q.base_dist.logits, self.prior_logits
        on, off = F.logsigmoid(a), F.logsigmoid(-a)
        return (on.exp() * (on - F.logsigmoid(c)) + off.exp() * (off - F.logsigmoid(-c))).sum(-1)
