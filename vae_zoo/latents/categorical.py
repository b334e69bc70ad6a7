"""N independent categorical latents of K classes each (Jang et al. 2016)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, Independent, OneHotCategorical

from vae_zoo.errors import ConfigError
from vae_zoo.latents.family import LatentFamily
from vae_zoo.latents.gumbel import gumbel_max

PRIORS = ("uniform", "learned")


class GumbelMaxOneHotCategorical(OneHotCategorical):
    """OneHotCategorical whose ``sample`` is the Gumbel-Max trick (exact, drawn in float32).

    Built from logits only; ``validate_args`` reaches the inner Categorical too (OneHotCategorical
    leaves it at the global default, which checks the logits on every construction).
    """

    def __init__(self, logits: Tensor, validate_args: bool | None = None) -> None:
        self._categorical = Categorical(logits=logits, validate_args=validate_args)
        batch_shape, event_shape = self._categorical.batch_shape, self._categorical.param_shape[-1:]
        Distribution.__init__(self, batch_shape, event_shape, validate_args=validate_args)

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        return gumbel_max(self.logits, sample_shape)


class CategoricalLatent(LatentFamily):
    """``q(z|x) = prod_n Cat(z_n; softmax(l_n(x)))`` over N variables of K classes; ``p(z)`` uniform or learned.

    Closed-form KL per image: ``sum_n sum_k q_nk (log q_nk - log p_nk)``. A sample is ``(..., N, K)``
    one-hot rows (relaxed ones under a relaxing estimator); the decoder reads it flattened to ``N * K``.
    """

    def __init__(self, in_features: int, n: int = 20, k: int = 10, prior: str = "uniform") -> None:
        super().__init__(in_features)
        if n < 1 or k < 2:
            raise ConfigError(f"model.latent.n={n} must be >= 1 and model.latent.k={k} >= 2")
        if prior not in PRIORS:
            raise ConfigError(f"model.latent.prior={prior!r} is not one of {', '.join(PRIORS)}")
        self.n, self.k = n, k
        self.sample_features = n * k
        self.head = nn.Linear(in_features, n * k)
        logits = torch.zeros(n, k)
        if prior == "learned":
            self.prior_logits = nn.Parameter(logits)
        else:
            self.register_buffer("prior_logits", logits, persistent=False)

    def posterior(self, features: Tensor) -> Independent:
        logits = self.head(features).unflatten(-1, (self.n, self.k))
        return Independent(GumbelMaxOneHotCategorical(logits=logits, validate_args=False), 1)

    def prior(self) -> Independent:
        return Independent(GumbelMaxOneHotCategorical(logits=self.prior_logits, validate_args=False), 1)

    def kl(self, q: Independent) -> Tensor:
        log_q = q.base_dist.logits  # normalized: log softmax(l)
        log_p = self.prior_logits.log_softmax(-1)
        return (log_q.exp() * (log_q - log_p)).sum((-2, -1))

    def decoder_input(self, z: Tensor) -> Tensor:
        return z.flatten(-2)
