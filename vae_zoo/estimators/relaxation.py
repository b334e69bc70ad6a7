"""The continuous relaxations of binary and categorical latents that the relaxed estimators share.

A discrete sample is the hard threshold of a perturbed logit ``z``: for a Bernoulli with logit ``a``,
``z = a + log u - log(1 - u)`` (logistic noise) and ``b = 1[z > 0]``; for a categorical with normalized
log-probabilities ``t``, ``z = t + g`` (Gumbel noise) and ``b = one_hot(argmax z)`` (Gumbel-Max). The
relaxation at temperature ``tau`` is ``sigmoid(z / tau)`` or ``softmax(z / tau)`` (Concrete; Maddison et
al. 2017, Jang et al. 2016). ``conditional(b)`` draws ``z~ ~ p(z | H(z) = b)`` (Tucker et al. 2017,
appendix): for a Bernoulli with ``p = sigmoid(a)`` and ``v ~ U(0, 1)``, ``u' = b (1 - p + v p) + (1 - b) v (1 - p)``
and ``z~ = a + logit(u')``; for a categorical, ``z~_b = -log(-log v_b)`` and ``z~_i = -log(-log v_i / p_i -
log v_b)`` for ``i != b``. Noise is drawn in float32 and clamped away from 0 and 1.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Bernoulli, Distribution, OneHotCategorical

from vae_zoo.capabilities import coordinates
from vae_zoo.latents.gumbel import gumbel_noise
from vae_zoo.packed_batch import per_image

_F32 = torch.finfo(torch.float32)


def uniform(shape: torch.Size, device: torch.device) -> Tensor:
    """U(0, 1) in float32, clamped to ``[tiny, 1 - eps]`` so that logs and logits stay finite."""
    return torch.rand(shape, device=device, dtype=torch.float32).clamp_(_F32.tiny, 1.0 - _F32.eps)


class Relaxation(ABC):
    """Perturbed logits, their hard threshold, relaxation and conditional resampling for one kind of latent."""

    def __init__(self, logits: Tensor) -> None:
        self.logits = logits.float()

    def shape(self, sample_shape: torch.Size | tuple[int, ...]) -> torch.Size:
        return torch.Size(sample_shape) + self.logits.shape

    @abstractmethod
    def perturb(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        """Perturbed logits ``z``, shape ``sample_shape + logits.shape``."""

    @abstractmethod
    def hard(self, z: Tensor) -> Tensor:
        """The exact discrete sample ``H(z)``."""

    @abstractmethod
    def relax(self, z: Tensor, temperature: Tensor | float) -> Tensor:
        """The relaxed sample at ``temperature``: a number, or one per packed model or per row of the batch
        (the temperatures of packed models, ``vae_zoo.packing``)."""

    def scaled(self, z: Tensor, temperature: Tensor | float) -> Tensor:
        """``z / temperature``, a temperature per model or row spread over each row's coordinates."""
        if isinstance(temperature, Tensor) and temperature.dim() == 1:
            rows = per_image(temperature, len(self.logits))
            temperature = rows.reshape(-1, *(1,) * (self.logits.dim() - 1))
        return z / temperature

    @abstractmethod
    def conditional(self, b: Tensor) -> Tensor:
        """``z~ ~ p(z | H(z) = b)``, one draw per ``b``."""

    @abstractmethod
    def shifted_to(self, probs: Tensor) -> Tensor:
        """``probs`` (in the relaxation's open simplex or ``(0, 1)``) as the temperature-1 relaxation of the
        logits shifted by a constant, ``relax(logits + stop(relax^-1(probs) - logits), 1)``: equal to ``probs``,
        with the relaxation's Jacobian in the logits taken at ``probs``."""


class BinaryRelaxation(Relaxation):
    """Bernoulli latents: logistic perturbation, ``1[z > 0]``, ``sigmoid(z / tau)``."""

    def perturb(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        u = uniform(self.shape(sample_shape), self.logits.device)
        return self.logits + torch.log(u) - torch.log1p(-u)

    def hard(self, z: Tensor) -> Tensor:
        return (z > 0).to(z.dtype)

    def relax(self, z: Tensor, temperature: Tensor | float) -> Tensor:
        return torch.sigmoid(self.scaled(z, temperature))

    def conditional(self, b: Tensor) -> Tensor:
        v = uniform(b.shape, b.device)
        p = torch.sigmoid(self.logits)
        u = (b * (1 - p + v * p) + (1 - b) * v * (1 - p)).clamp(_F32.tiny, 1.0 - _F32.eps)
        return self.logits + torch.log(u) - torch.log1p(-u)

    def shifted_to(self, probs: Tensor) -> Tensor:
        return torch.sigmoid(self.logits + (torch.logit(probs) - self.logits).detach())


class CategoricalRelaxation(Relaxation):
    """Categorical latents (one-hot over the last dim): Gumbel perturbation of the normalized
    log-probabilities, ``argmax``, ``softmax(z / tau)``."""

    def __init__(self, logits: Tensor) -> None:
        super().__init__(logits)
        self.logits = self.logits.log_softmax(-1)

    def perturb(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        return self.logits + gumbel_noise(self.shape(sample_shape), self.logits.device)

    def hard(self, z: Tensor) -> Tensor:
        return F.one_hot(z.argmax(-1), z.shape[-1]).to(z.dtype)

    def relax(self, z: Tensor, temperature: Tensor | float) -> Tensor:
        return torch.softmax(self.scaled(z, temperature), dim=-1)

    def conditional(self, b: Tensor) -> Tensor:
        """In log space, ``z~_i = -logaddexp(log(-log v_i) - t_i, log(-log v_b))``: dividing by ``p_i``
        itself overflows the backward pass (``1 / p_i^2``) once a class's log-probability is below about
        -44, which a trained encoder reaches."""
        log_minus_log_v = torch.log(-torch.log(uniform(b.shape, b.device)))
        top = (log_minus_log_v * b).sum(-1, keepdim=True)  # log(-log v_b)
        others = -torch.logaddexp(log_minus_log_v - self.logits, top)
        return torch.where(b.bool(), -top, others)

    def shifted_to(self, probs: Tensor) -> Tensor:
        return torch.softmax(self.logits + (torch.log(probs) - self.logits).detach(), dim=-1)


def relaxation(q: Distribution) -> Relaxation:
    """The relaxation of ``q``'s coordinates: binary for a Bernoulli, categorical for a one-hot categorical."""
    base = coordinates(q)
    if isinstance(base, Bernoulli):
        return BinaryRelaxation(base.logits)
    if isinstance(base, OneHotCategorical):
        return CategoricalRelaxation(base.logits)
    raise TypeError(f"{type(base).__name__} has no discrete relaxation")  # the pairing check prevents this
