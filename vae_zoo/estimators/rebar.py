"""REBAR: a control variate from the continuous relaxation, with conditional resampling (Tucker et al. 2017)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from vae_zoo.capabilities import DISCRETE_LOGITS, coordinates
from vae_zoo.errors import ConfigError
from vae_zoo.estimators.estimator import (
    Cost,
    Draw,
    Estimator,
    gradient_term,
    joint_log_prob,
    own_group,
    own_learning_rate,
)
from vae_zoo.estimators.relaxation import relaxation
from vae_zoo.packed_batch import per_image


class REBAR(Estimator):
    """With perturbed logits ``z``, the exact sample ``b = H(z)`` and ``z~ ~ p(z | b)``
    (``vae_zoo.estimators.relaxation``), the estimate of the gradient with respect to the logits is

        g = [f(b) - c(z~)] d/da log q(b) + d/da c(z) - d/da c(z~),    c(s) = eta * f(sigma_lambda(s)),

    unbiased for any ``c`` because ``z`` and ``z~`` have the same distribution; the relaxation makes it a
    good control variate. The temperature ``lambda`` (parametrised by its log) and the scale ``eta`` are the
    estimator's own parameters, trained by the model's optimizer in their own group (``lr``; null: the
    model's) to minimise ``E ||g||^2`` per image (the variance, since the mean does not depend on them),
    through ``g``'s dependence on them (a second-order gradient). The encoder receives ``g`` through the
    logits only (the decoder is trained on ``f(b)`` alone). Binary and categorical latents.
    """

    requires = DISCRETE_LOGITS
    extra_cost_evaluations = 2  # f(sigma(z)) and f(sigma(z~))
    per_model_state = ("log_temperature", "eta")

    def __init__(self, temperature: float = 0.5, eta: float = 1.0, lr: float | None = None) -> None:
        super().__init__()
        if not temperature > 0:
            raise ConfigError(f"model.estimator.temperature={temperature} must be > 0")
        self.lr = own_learning_rate(lr)
        self.log_temperature = nn.Parameter(torch.tensor(math.log(temperature)))
        self.eta = nn.Parameter(torch.tensor(float(eta)))

    def param_groups(self) -> list[dict]:
        return [own_group(self.parameters(), self.lr)]

    def draw(self, q: Distribution, sample_shape: torch.Size | tuple[int, ...] = ()) -> Draw:
        """``b = H(z)``, with the perturbed logits ``z`` (their graph to the logits kept) for the surrogate."""
        relaxing = relaxation(q)
        perturbed = relaxing.perturb(sample_shape)
        return Draw(relaxing.hard(perturbed.detach()), perturbed)

    def sample(self, q: Distribution, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        return self.draw(q, sample_shape).value

    def control(self, relaxed: Tensor, cost: Cost, logits: Tensor, eta: Tensor) -> Tensor:
        """``c(s)`` shaped like the cost, for the relaxed sample ``relaxed`` (``eta`` per image when packed)."""
        return eta * cost.at(relaxed)

    def surrogate(self, q: Distribution, draw: Draw, cost: Cost) -> Tensor:
        logits, relaxing, z = coordinates(q).logits, relaxation(q), draw.value
        # each read once, as its own tensor: the second-order gradients then sum in an unpacked run's order
        temperature = per_image(self.log_temperature, len(logits)).exp()
        eta = per_image(self.eta, len(logits))
        control = self.control(relaxing.relax(draw.noise, temperature), cost, logits, eta)
        control_tilde = self.control(relaxing.relax(relaxing.conditional(z), temperature), cost, logits, eta)
        value = cost.value.detach()
        (score,) = torch.autograd.grad(joint_log_prob(q, z, value).sum(), logits, retain_graph=True)
        (pathwise,) = torch.autograd.grad(
            (control - control_tilde).sum(), logits, create_graph=True, retain_graph=True
        )
        coefficient = value - control_tilde
        coefficient = coefficient.reshape(coefficient.shape + (1,) * (logits.dim() - coefficient.dim()))
        gradient = coefficient * score + pathwise  # per image, shaped like the logits
        own = [p for p in self.parameters() if p.requires_grad]
        # the mean over each model's images of ||g||^2, summed over packed models (each model's own parameters
        # see only its own images)
        variance = gradient.square().sum() / (len(logits) // self.models)
        own_gradients = torch.autograd.grad(variance, own, retain_graph=True, allow_unused=True)
        own_gradients = [torch.zeros_like(p) if g is None else g for p, g in zip(own, own_gradients)]
        through_logits = (gradient.detach() * logits).flatten(1).sum(-1)
        # the zero-valued term joins each packed model's batch mean, and the packed loss sums those: once in all
        return through_logits + gradient_term(own, own_gradients) / self.models
