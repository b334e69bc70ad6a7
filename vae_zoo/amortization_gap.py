"""The amortization gap (Cremer, Li & Duvenaud 2018): how much of the distance between the ELBO and ``log p(x)``
is the encoder's, rather than the posterior family's.

The encoder gives each image its features ``h0 = e(x)`` and the posterior ``q(z|h0)``. A posterior of the same
family fitted to that image alone, ``q(z|h*)``, comes from Adam on the features with the model held fixed,

    h* ~ argmin_h  E_q(z|h)[-log p(x|z)] + KL(q(z|h) || p(z)),

one reparameterized sample a step, the learning rate decayed linearly to 0 (the KL in closed form where there is
one, else its one-sample estimate). Each image's features move by their own gradient (Adam acts elementwise), so
the images of a batch are refined independently of one another. With ``-L[q]`` the negative ELBO:

    amortization gap  = -L[q(.|h0)] - (-L[q(.|h*)])     (the encoder's share; >= 0 up to the optimizer)
    approximation gap = -L[q(.|h*)] - (-log p(x))        (the family's share; -log p(x) from the IW bound)

The features reach every posterior parameter where the latent head maps onto them (a linear head of full rank),
and a flow conditioned on the features (IAF's context) is refined with them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor
from torch.optim.lr_scheduler import LambdaLR

from vae_zoo.capabilities import RSAMPLE, is_point_mass
from vae_zoo.errors import ConfigError

if TYPE_CHECKING:
    from vae_zoo.probabilistic_model import ProbabilisticModel


class AmortizationGap(NamedTuple):
    """Per image, in nats: the negative ELBO of the encoder's posterior and of the refined one."""

    amortized: Tensor
    refined: Tensor

    @property
    def gap(self) -> Tensor:
        return self.amortized - self.refined


def negative_elbo(model: ProbabilisticModel, x: Tensor, features: Tensor, samples: int) -> Tensor:
    """``-L[q(.|features)]`` per image: ``-log p(x|z) + KL``, the mean over ``samples`` exact draws of ``q``, drawn
    one at a time (a flow's density is known at its latest sample)."""
    with model.autocast_off():
        q = model.posterior_of_features(features)
    terms = []
    for _ in range(samples):
        with model.autocast_off():
            z = q.sample()
        terms.append(model.nll(x, z) + model.kl_at(q, z))
    return torch.stack(terms).mean(0)


def refined_features(model: ProbabilisticModel, x: Tensor, steps: int, lr: float) -> Tensor:
    """``h*``: the encoder's features of ``x`` after ``steps`` of Adam on the negative ELBO, the model held fixed
    (its parameters get no gradient)."""
    if not steps >= 1 or not lr > 0:
        raise ConfigError(f"refining the posterior needs steps={steps} >= 1 and lr={lr} > 0")
    with torch.no_grad():
        features = model.features(x).clone()  # a copy: an encoder without layers returns a view of x
        with model.autocast_off():
            q = model.posterior_of_features(features)
    if not RSAMPLE.met_by(q):
        raise ConfigError(
            f"refining the posterior follows the gradient of its samples, and {model.posterior_name}'s posterior "
            f"lacks {RSAMPLE.needs}: the amortization gap is for a reparameterized family (normal, gamma, ...)"
        )
    if is_point_mass(q):
        raise ConfigError(
            f"{model.posterior_name}'s posterior is a point mass, whose ELBO is piecewise constant in the features: "
            "the amortization gap is for a family with a density (normal, gamma, ...)"
        )
    features.requires_grad_()
    optimizer = torch.optim.Adam([features], lr=lr)
    schedule = LambdaLR(optimizer, lambda step: 1 - step / steps)
    with torch.enable_grad():
        for _ in range(steps):
            with model.autocast_off():
                q = model.posterior_of_features(features)
                z = q.rsample()
            loss = (model.nll(x, z) + model.kl_at(q, z)).sum()
            (features.grad,) = torch.autograd.grad(loss, [features])
            optimizer.step()
            schedule.step()
    return features.detach()


def amortization_gap(
    model: ProbabilisticModel, x: Tensor, steps: int = 500, lr: float = 0.05, samples: int = 10
) -> AmortizationGap:
    """The negative ELBO of the images ``x`` under the encoder's posterior and under the posterior refined for
    each image (``refined_features``), each the mean over ``samples`` exact draws."""
    refined = refined_features(model, x, steps, lr)
    with torch.no_grad():
        return AmortizationGap(
            negative_elbo(model, x, model.features(x), samples), negative_elbo(model, x, refined, samples)
        )
