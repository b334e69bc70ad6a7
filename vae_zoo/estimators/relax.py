"""RELAX: REBAR's control variate plus a learned surrogate network (Grathwohl et al. 2018)."""

from __future__ import annotations

from torch import Tensor, nn

from vae_zoo.errors import ConfigError
from vae_zoo.estimators.estimator import Cost
from vae_zoo.estimators.rebar import REBAR


class RELAX(REBAR):
    """REBAR with ``c(s) = eta * f(sigma_lambda(s)) + r(sigma_lambda(s))``: ``r`` a one-hidden-layer network
    (``hidden`` ReLU units) on the flattened relaxed sample, trained with ``lambda`` and ``eta`` to minimise
    the estimate's variance. Unbiased for any ``r``; binary and categorical latents."""

    sizes = ("latent_features",)

    def __init__(
        self,
        latent_features: int,
        hidden: int = 200,
        temperature: float = 0.5,
        eta: float = 1.0,
        lr: float | None = None,
    ) -> None:
        super().__init__(temperature, eta, lr)
        if hidden < 1:
            raise ConfigError(f"model.estimator.hidden={hidden} must be >= 1")
        self.network = nn.Sequential(nn.Linear(latent_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def control(self, relaxed: Tensor, cost: Cost, logits: Tensor, eta: Tensor) -> Tensor:
        learned = self.network(relaxed.flatten(-(logits.dim() - 1))).squeeze(-1)  # per sample and image
        reduced = learned.dim() - cost.value.dim()  # the samples the cost is a joint function of
        learned = learned.sum(tuple(range(reduced))) if reduced else learned
        return super().control(relaxed, cost, logits, eta) + learned
