"""The Gumbel-Softmax (Concrete) relaxation of categorical and binary samples (Jang et al. 2016; Maddison et
al. 2017)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Distribution

from vae_zoo.capabilities import DISCRETE_LOGITS
from vae_zoo.errors import ConfigError
from vae_zoo.estimators.estimator import Estimator
from vae_zoo.estimators.relaxation import relaxation


class GumbelSoftmaxEstimator(Estimator):
    """``z = softmax((logits + g) / tau)`` (binary latents: ``sigmoid((a + l) / tau)``, l logistic noise):
    a biased, low-variance pathwise gradient whose bias shrinks with ``tau``. The sample is relaxed, not
    one-hot, so densities of q cannot be evaluated at it (``exact_samples = False``). ``temperature`` is set
    each step by the TemperatureAnnealing callback when present."""

    requires = DISCRETE_LOGITS
    exact_samples = False
    unbiased = False

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ConfigError(f"model.estimator.temperature={temperature} must be > 0")
        self.temperature = temperature

    def sample(self, q: Distribution, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        """The relaxation of perturbed logits at ``temperature`` (not an exact sample of q)."""
        relaxing = relaxation(q)
        return relaxing.relax(relaxing.perturb(sample_shape), self.temperature)
