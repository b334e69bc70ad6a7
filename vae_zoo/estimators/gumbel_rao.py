"""Gumbel-Rao: straight-through Gumbel-Softmax, Rao-Blackwellised over the noise (Paulus, Maddison & Krause 2021)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Distribution

from vae_zoo.capabilities import DISCRETE_LOGITS
from vae_zoo.errors import ConfigError
from vae_zoo.estimators.estimator import Estimator
from vae_zoo.estimators.relaxation import relaxation


class GumbelRao(Estimator):
    """Forward the exact sample ``b``; backward the gradient of ``1/m sum_i sigma_tau(a + g~_i)`` with the
    noise ``g~_i = z~_i - a`` of ``z~_i ~ p(z | H(z) = b)`` held fixed: a Monte Carlo estimate of
    ``E[d sigma_tau(a + g) / da | b]``, the straight-through Gumbel-Softmax gradient with its noise
    integrated out given ``b``. Its mean is straight-through's (a test checks it), so it is biased as that
    is (the bias shrinks with ``tau``), with lower variance; ``temperature`` follows callbacks.temperature
    when present. Binary and categorical latents."""

    requires = DISCRETE_LOGITS
    unbiased = False

    def __init__(self, temperature: float = 1.0, samples: int = 10) -> None:
        super().__init__()
        if not temperature > 0 or samples < 1:
            raise ConfigError(
                f"model.estimator.temperature={temperature} must be > 0 and model.estimator.samples={samples} >= 1"
            )
        self.temperature, self.samples = temperature, samples

    def sample(self, q: Distribution, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        relaxing = relaxation(q)
        hard = relaxing.hard(relaxing.perturb(sample_shape).detach())
        noise = (relaxing.conditional(hard.expand(self.samples, *hard.shape)) - relaxing.logits).detach()
        soft = relaxing.relax(relaxing.logits + noise, self.temperature).mean(0)
        return hard + (soft - soft.detach())
