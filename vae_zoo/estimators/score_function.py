"""The score-function (REINFORCE, likelihood-ratio) estimator (Williams 1992)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Distribution

from vae_zoo.capabilities import SCORE
from vae_zoo.errors import ConfigError
from vae_zoo.estimators.estimator import Cost, Draw, Estimator, joint_log_prob
from vae_zoo.packed_batch import batch_mean, per_image

BASELINES = ("moving_average", "none")


class ScoreFunctionEstimator(Estimator):
    """``grad_phi E_q[c(z)] = E_q[(c(z) - b) grad_phi log q(z|phi)]`` for any ``q`` with a log-density.

    The sample carries no gradient; the surrogate ``(c - b) * log q(z)`` carries it. When the cost is a
    function of several samples per image (the IWAE bound of k samples), ``log q`` is their joint
    log-density, summed over the sample dims the cost reduced. ``b`` is an exponential moving average of
    the batch-mean cost (``decay``; moved by ``update_statistics`` after this batch's surrogate, so ``b``
    does not depend on this batch's sample: unbiased); ``baseline: none`` uses ``b = 0``. Works for every family, with a variance far
    above the pathwise and implicit estimators'.
    """

    requires = SCORE
    per_model_state = ("baseline_value", "baseline_started")

    def __init__(self, baseline: str = "moving_average", decay: float = 0.9) -> None:
        super().__init__()
        if baseline not in BASELINES:
            raise ConfigError(f"model.estimator.baseline={baseline!r} is not one of {', '.join(BASELINES)}")
        if not 0 <= decay < 1:
            raise ConfigError(f"model.estimator.decay={decay} must be in [0, 1)")
        self.baseline, self.decay = baseline, decay
        self.register_buffer("baseline_value", torch.zeros(()))
        self.register_buffer("baseline_started", torch.zeros((), dtype=torch.bool))

    def sample(self, q: Distribution, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        return q.sample(sample_shape)

    def surrogate(self, q: Distribution, draw: Draw, cost: Cost) -> Tensor:
        value = cost.value.detach()
        log_q = joint_log_prob(q, draw.value, value)
        if self.baseline == "none":
            return value * log_q
        return (value - per_image(self.baseline_value, value.shape[-1])) * log_q

    def update_statistics(self, cost: Cost) -> None:
        if self.baseline == "none":
            return
        mean = batch_mean(cost.value.detach(), self.models)
        self.baseline_value.copy_(
            torch.where(
                self.baseline_started, self.decay * self.baseline_value + (1 - self.decay) * mean, mean
            )
        )
        self.baseline_started.fill_(True)
