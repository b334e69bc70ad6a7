"""The total correlation estimated by a discriminator (Kim & Mnih 2018's FactorVAE).

A discriminator ``D(z) = sigmoid(l(z))`` learns to tell samples of the aggregate posterior ``q(z)`` from samples of
the product of its marginals ``q̄(z) = prod_u q(z_u)``, which permuting each latent unit's values across the batch
draws. It trains on the cross-entropy

    L_D = -1/2 E_q(z)[log D(z)] - 1/2 E_q̄(z)[log(1 - D(z))],

whose minimiser has ``l(z) = log q(z) / q̄(z)``, so ``TC = KL(q(z) || q̄(z)) = E_q(z)[l(z)]``: FactorVAE adds
``gamma l(z)`` at each training sample to the negative ELBO, with ``l``'s parameters held fixed (the VAE moves
its samples, not the discriminator). Packed models (``vae_zoo.packing``) each permute their own images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.functional import softplus

from vae_zoo.errors import ConfigError
from vae_zoo.nets.mlp import mlp


class FactorDiscriminator(nn.Module):
    """``l(z)``: the flattened latent sample (``latent_features`` wide) through ``hidden`` layers with
    ``activation`` to one logit (Kim & Mnih's: five layers of 1000 units, ``LeakyReLU(0.2)``). The model's
    optimizer trains it in its own parameter group, with ``lr`` and Adam's ``betas`` (theirs: 1e-4 and
    (0.5, 0.9))."""

    def __init__(
        self,
        latent_features: int,
        hidden: Sequence[int] = (1000, 1000, 1000, 1000, 1000),
        activation: str = "LeakyReLU(0.2)",
        lr: float = 1e-4,
        betas: Sequence[float] = (0.5, 0.9),
    ) -> None:
        super().__init__()
        if not lr > 0 or len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise ConfigError(
                f"model.discriminator.lr={lr} must be > 0 and betas={list(betas)} two numbers in [0, 1)"
            )
        self.lr, self.betas = float(lr), tuple(float(b) for b in betas)
        sizes = [latent_features, *hidden]
        self.net = nn.Sequential(mlp(sizes, activation), nn.Linear(sizes[-1], 1))

    def forward(self, z: Tensor) -> Tensor:
        """The logit ``l(z)`` per image of samples ``(B, units, ...)``, in float32."""
        return self.net(z.flatten(1)).squeeze(-1).float()

    def param_groups(self) -> list[dict]:
        """Its parameters in one optimizer group with its own ``lr`` and ``betas``."""
        return [{"params": list(self.parameters()), "lr": self.lr, "betas": self.betas}]


def permuted_units(z: Tensor, models: int = 1) -> Tensor:
    """A sample of ``q̄(z)`` per image: each latent unit's values (``z`` ``(B, units, ...)``, a unit's event moves
    whole) permuted across the images, independently per unit; packed, across each model's own images."""
    rows, units = len(z) // models, z.shape[1]
    blocks = z.reshape(models, rows, units, -1)
    order = torch.rand(models, rows, units, device=z.device).argsort(dim=1)
    permuted = blocks.gather(1, order.unsqueeze(-1).expand_as(blocks))
    return permuted.reshape(z.shape)


class DiscriminatorTerms(NamedTuple):
    """Per image: ``tc``, ``l(z)`` at the training sample with gradient to the sample alone; ``loss``, the
    discriminator's cross-entropy at the sample and at a permuted one, with gradient to its parameters alone."""

    tc: Tensor
    loss: Tensor


def discriminator_terms(discriminator: FactorDiscriminator, z: Tensor, models: int = 1) -> DiscriminatorTerms:
    """``l(z)`` through the discriminator's parameters held fixed (a sample without gradient: its value alone), and
    ``L_D``'s per-image terms ``(softplus(-l(z)) + softplus(l(z̃))) / 2`` at the sample and at
    ``z̃ = permuted_units(z)``, both detached."""
    sample = z.detach()
    real, permuted = discriminator(sample), discriminator(permuted_units(sample, models))
    if z.requires_grad:
        fixed = {name: p.detach() for name, p in discriminator.named_parameters()}
        tc = functional_call(discriminator, fixed, (z,))
    else:
        tc = real.detach()
    return DiscriminatorTerms(tc, (softplus(-real) + softplus(permuted)) / 2)
