"""Neural variational inference and learning: a learned, input-dependent baseline (Mnih & Gregor 2014)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from vae_zoo.capabilities import SCORE
from vae_zoo.errors import ConfigError
from vae_zoo.estimators.estimator import Cost, Draw, Estimator, joint_log_prob, own_group, own_learning_rate
from vae_zoo.packed_batch import batch_mean, batch_variance, per_image


class NVIL(Estimator):
    """Score function with the signal ``l = (c - b(x) - m) / s'``: ``b`` an MLP on the image (one tanh
    hidden layer), ``m`` and ``v`` running mean and variance of ``c - b(x)`` (``decay``; moved by
    ``update_statistics`` after this batch's surrogate, so the surrogate reads the earlier batches' values), and ``s' = max(1, sqrt(v))`` with ``normalise: true`` (Mnih & Gregor's variance
    normalisation), else 1. Neither depends on the sample, so the estimate is unbiased (up to the positive
    per-step scale ``1 / s'`` when normalising). ``b`` is trained by the model's optimizer, in its own
    parameter group (``lr``; null: the model's), on ``E[(c - m - b(x))^2]``; ``m``, ``v`` and ``b`` are
    checkpointed.

    Normalising is off by default: Mnih & Gregor's encoder gradient is all score function, so dividing it
    is a step size; here a closed-form KL adds its own gradient to the encoder's, and dividing only the
    cost's part weighs the KL ``s'`` times more (on ``experiment=disarm_mnist``, s' ~ 13 after 20,000
    steps and the posterior collapsed to a KL of 0.4 nats)."""

    requires = SCORE
    sizes = ("input_shape",)
    per_model_state = ("signal_mean", "signal_variance")

    def __init__(
        self,
        input_shape: Sequence[int],
        hidden: int = 100,
        decay: float = 0.8,
        normalise: bool = False,
        lr: float | None = None,
    ) -> None:
        super().__init__()
        if hidden < 1 or not 0 <= decay < 1:
            raise ConfigError(f"model.estimator.hidden={hidden} must be >= 1 and decay={decay} in [0, 1)")
        self.decay, self.normalise, self.lr = decay, normalise, own_learning_rate(lr)
        self.baseline = nn.Sequential(
            nn.Flatten(-3), nn.Linear(math.prod(input_shape), hidden), nn.Tanh(), nn.Linear(hidden, 1)
        )
        self.register_buffer("signal_mean", torch.zeros(()))
        self.register_buffer("signal_variance", torch.ones(()))

    def param_groups(self) -> list[dict]:
        return [own_group(self.baseline.parameters(), self.lr)]

    def signal_scale(self) -> Tensor:
        """What the centred signal is divided by at the next step: ``max(1, sqrt(v))``, or 1."""
        if not self.normalise:
            return torch.ones_like(self.signal_variance)
        return self.signal_variance.sqrt().clamp_min(1.0)

    def residual(self, cost: Cost) -> tuple[Tensor, Tensor]:
        """``c - b(x)`` per image (the baseline's prediction detached), and the prediction with its gradient."""
        if cost.x is None:
            raise ValueError("NVIL's baseline reads the images: the objective must pass them as Cost.x")
        predicted = self.baseline(cost.x.float()).squeeze(-1)  # per image
        return cost.value.detach() - predicted.detach(), predicted

    def sample(self, q: Distribution, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        return q.sample(sample_shape)

    def surrogate(self, q: Distribution, draw: Draw, cost: Cost) -> Tensor:
        value = cost.value.detach()
        residual, predicted = self.residual(cost)
        images = value.shape[-1]
        mean, scale = per_image(self.signal_mean, images), per_image(self.signal_scale(), images)
        fit = (value - mean - predicted).square()  # per image: the baseline's own loss, only it has gradient
        signal = (residual - mean) / scale
        return signal * joint_log_prob(q, draw.value, value) + (fit - fit.detach())

    def update_statistics(self, cost: Cost) -> None:
        residual, _ = self.residual(cost)
        self.signal_mean.mul_(self.decay).add_((1 - self.decay) * batch_mean(residual, self.models))
        self.signal_variance.mul_(self.decay).add_((1 - self.decay) * batch_variance(residual, self.models))
