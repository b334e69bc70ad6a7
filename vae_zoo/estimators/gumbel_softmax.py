"""The Gumbel-Softmax (Concrete) relaxation of categorical samples (Jang et al. 2016; Maddison et al. 2017)."""

from __future__ import annotations

from torch import Tensor
from torch.distributions import Distribution

from vae_zoo.errors import ConfigError
from vae_zoo.estimators.estimator import Estimator, elementwise
from vae_zoo.latents.gumbel import gumbel_softmax


def categorical_logits(q: Distribution) -> Tensor:
    """The class logits of a (possibly Independent-wrapped) categorical posterior."""
    return elementwise(q).logits


class GumbelSoftmaxEstimator(Estimator):
    """``z = softmax((logits + g) / tau)``: a biased, low-variance pathwise gradient whose bias shrinks
    with ``tau``. ``temperature`` is set each step by the TemperatureAnnealing callback when present."""

    name = "gumbel_softmax"

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ConfigError(f"model.estimator.temperature={temperature} must be > 0")
        self.temperature = temperature

    def sample(self, q: Distribution) -> Tensor:
        return gumbel_softmax(categorical_logits(q), self.temperature)
