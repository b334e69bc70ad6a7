"""N independent categorical latents of K classes each (Jang et al. 2016)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, Independent, OneHotCategorical, register_kl

from vae_zoo.errors import ConfigError
from vae_zoo.latents.family import LatentFamily, check_logit_prior
from vae_zoo.latents.gumbel import gumbel_max


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


class OneHotRows(Independent):
    """N independent one-hot categoricals of K classes (Gumbel-Max sampled): an ``(N, K)`` one-hot matrix as the
    event. The posterior and the prior of the categorical family, which the KL registry knows by this class."""

    def __init__(self, logits: Tensor) -> None:
        super().__init__(
            GumbelMaxOneHotCategorical(logits=logits, validate_args=False), 1, validate_args=False
        )


@register_kl(OneHotRows, OneHotRows)
def kl_one_hot_rows(q: OneHotRows, p: OneHotRows) -> Tensor:
    """``sum_n sum_k q_nk (log q_nk - log p_nk)`` per matrix, from the normalized logits, in one reduction: torch's
    categorical KL masks zero probabilities with indexed assignments per row, which a softmax never gives
    (``scripts/kl_speed.py``)."""
    log_q, log_p = q.base_dist.logits, p.base_dist.logits
    return (log_q.exp() * (log_q - log_p)).sum((-2, -1))


class CategoricalLatent(LatentFamily):
    """``q(z|x) = prod_n Cat(z_n; softmax(l_n(x)))`` over N variables of K classes; ``p(z)`` uniform or learned.

    Closed-form KL per image: ``sum_n sum_k q_nk (log q_nk - log p_nk)`` (``kl_one_hot_rows``). A sample is ``(..., N, K)``
    one-hot rows (relaxed ones under a relaxing estimator); the decoder reads it flattened to ``N * K``.
    """

    per_image_parameters = ("prior_logits",)

    def __init__(self, in_features: int, n: int = 20, k: int = 10, prior: str = "uniform") -> None:
        super().__init__(in_features)
        if n < 1 or k < 2:
            raise ConfigError(f"model.latent.n={n} must be >= 1 and model.latent.k={k} >= 2")
        check_logit_prior(prior)
        self.n, self.k = n, k
        self.sample_features = n * k
        self.head = nn.Linear(in_features, n * k)
        self.register_prior_logits((n, k), prior)

    def posterior(self, features: Tensor) -> OneHotRows:
        return OneHotRows(self.head(features).unflatten(-1, (self.n, self.k)))

    def prior(self) -> OneHotRows:
        return OneHotRows(self.prior_logits)

    def decoder_input(self, z: Tensor) -> Tensor:
        return z.flatten(-2)
