"""Checking a discrete gradient estimator against the exact gradient, on models small enough to enumerate.

For D Bernoulli units (or N categoricals of K classes) with logits ``a`` and a fixed cost ``f`` defined
on relaxed samples too, ``E_q[f(z)] = sum_z q(z; a) f(z)`` over all ``2^D`` (``K^N``) configurations, and
its gradient with respect to ``a`` is exact by autograd of that sum. An estimator is run as the objectives
run it, on ``n`` copies of the logits at once (each copy one independent estimate): the loss
``mean(cost) + surrogate term``, whose gradient with respect to each copy's logits is that copy's estimate.
``z_scores`` are ``(mean estimate - exact) / standard error`` per logit: an unbiased estimator's stay within
a few units, a biased one's grow with ``n``. With ``samples = k > 1`` the cost is the k-sample bound
``-log (1/k) sum_i exp(-f(z_i))``, enumerated over all k-tuples.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.distributions import Bernoulli, Independent

from vae_zoo.components import build_with_sizes
from vae_zoo.config_groups import options
from vae_zoo.estimators.estimator import Cost, Estimator, surrogate_and_statistics
from vae_zoo.latents.categorical import GumbelMaxOneHotCategorical
from vae_zoo.objectives.objective import estimator_term

IMAGE_SHAPE = (1, 2, 2)  # what an estimator with an input-dependent baseline sees (all zeros)


@dataclass
class SmallModel:
    """Logits of a small discrete posterior and a smooth cost of its (possibly relaxed) samples."""

    logits: Tensor  # (D,) binary, or (N, K) categorical
    categorical: bool
    coupling: float = 0.7  # weight of the squared projection, which couples the units

    @property
    def features(self) -> int:
        return self.logits.numel()

    def posterior(self, logits: Tensor) -> Independent:
        if self.categorical:
            return Independent(GumbelMaxOneHotCategorical(logits=logits, validate_args=False), 1)
        return Independent(Bernoulli(logits=logits, validate_args=False), 1)

    def f(self, z: Tensor) -> Tensor:
        """A fixed nonlinear cost per sample: quadratic in each unit plus ``coupling`` times a squared
        projection of all of them."""
        flat = z.flatten(-2) if self.categorical else z
        target = torch.linspace(0.2, 0.8, self.features, dtype=flat.dtype)
        weight = torch.linspace(1.0, 2.0, self.features, dtype=flat.dtype)
        projection = (flat * torch.linspace(-1.0, 1.5, self.features, dtype=flat.dtype)).sum(-1)
        return ((flat - target).square() * weight).sum(-1) + self.coupling * projection.square()

    def configurations(self) -> Tensor:
        """Every value of z, ``(count, *logits.shape)``."""
        if self.categorical:
            n, k = self.logits.shape
            rows = torch.eye(k, dtype=self.logits.dtype)
            return torch.stack(
                [torch.stack([rows[i] for i in choice]) for choice in itertools.product(range(k), repeat=n)]
            )
        return torch.tensor(
            list(itertools.product((0.0, 1.0), repeat=self.features)), dtype=self.logits.dtype
        )

    def cost(self, z: Tensor, samples: int) -> Tensor:
        """The cost of samples ``z`` shaped ``(..., samples, n, *event)`` or ``(..., n, *event)``."""
        if samples == 1:
            return self.f(z)
        return math.log(samples) - torch.logsumexp(-self.f(z), dim=-2)

    def exact_gradient(self, samples: int = 1) -> Tensor:
        logits = self.logits.double().clone().requires_grad_()
        configs = self.configurations().double()
        log_q = self.posterior(logits).log_prob(configs)  # (count,)
        if samples == 1:
            expectation = (log_q.exp() * self.f(configs)).sum()
        else:  # every k-tuple of configurations
            index = torch.cartesian_prod(*[torch.arange(len(configs))] * samples).reshape(-1, samples)
            tuples = configs[index]  # (count^k, k, *event)
            log_weight = -self.f(tuples)
            bound = math.log(samples) - torch.logsumexp(log_weight, dim=-1)
            expectation = (log_q[index].sum(-1).exp() * bound).sum()
        (gradient,) = torch.autograd.grad(expectation, logits)
        return gradient.float()

    def loss(self, estimator: Estimator, n: int, samples: int = 1) -> tuple[Tensor, Tensor]:
        """The objective's loss on ``n`` copies of the logits (each copy one image), and those copies."""
        logits = self.logits.expand(n, *self.logits.shape).clone().requires_grad_()
        q = self.posterior(logits)
        shape = (samples,) if samples > 1 else ()
        draw = estimator.draw(q, shape)
        z = draw.value
        at = lambda z: self.cost(z, samples)
        value = at(z)
        log_weights = -self.f(z) if samples > 1 else None
        cost = Cost(value, at, torch.zeros(n, *IMAGE_SHAPE), log_weights)
        return value.mean() + estimator_term(surrogate_and_statistics(estimator, q, draw, cost)), logits

    def estimates(self, estimator: Estimator, n: int, samples: int = 1) -> Tensor:
        """``n`` independent estimates of the gradient, ``(n, *logits.shape)``."""
        loss, logits = self.loss(estimator, n, samples)
        (gradient,) = torch.autograd.grad(loss * n, logits)
        return gradient

    def train_estimator(self, estimator: Estimator, steps: int, n: int = 500, lr: float = 1e-2) -> None:
        """``steps`` Adam steps on the estimator's own parameters, with the gradients its surrogate hands them
        (a baseline's fit, the estimate's variance), as the model's optimizer would take them."""
        groups = estimator.param_groups()
        if not groups:
            return
        optimizer = torch.optim.Adam(groups, lr=lr)
        for _ in range(steps):
            optimizer.zero_grad()
            self.loss(estimator, n)[0].backward()
            optimizer.step()

    def estimator(self, name: str, **settings) -> Estimator:
        """``estimator=name`` (with ``settings`` over its config) built for this model: its networks see
        ``IMAGE_SHAPE`` images and the flattened latent."""
        config = {**options("estimator")[name], **settings}
        sizes = {"input_shape": IMAGE_SHAPE, "latent_features": self.features}
        return build_with_sizes(config, Estimator, "model.estimator", sizes)

    def z_scores(
        self, estimator: Estimator, n: int, samples: int = 1, scale: float = 1.0
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(z, mean estimate, exact, estimates)`` per logit; ``scale`` multiplies the estimates first (NVIL
        divides its signal by a positive running scale, which this undoes)."""
        draws = self.estimates(estimator, n, samples) * scale
        exact = self.exact_gradient(samples)
        mean, error = draws.mean(0), draws.std(0) / math.sqrt(n)
        return (mean - exact) / error.clamp_min(1e-12), mean, exact, draws


def binary_model(dim: int = 5, coupling: float = 0.7) -> SmallModel:
    return SmallModel(torch.linspace(-1.5, 1.0, dim), categorical=False, coupling=coupling)


def categorical_model(n: int = 2, k: int = 3, coupling: float = 0.7) -> SmallModel:
    return SmallModel(torch.linspace(-1.0, 1.2, n * k).reshape(n, k), categorical=True, coupling=coupling)


def total_variance(estimates: Tensor) -> float:
    """The trace of the estimates' covariance (the sum of the per-logit variances)."""
    return estimates.var(0).sum().item()
