"""Two stochastic layers (Burda, Grosse & Salakhutdinov 2016): q(z1|x) q(z2|z1), p(z2) p(z1|z2) p(x|z1)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, Normal, constraints

from vae_zoo.errors import ConfigError
from vae_zoo.latents.family import LatentFamily
from vae_zoo.nets.mlp import mlp

MIN_SCALE = 1e-5


def diagonal_normal(params: Tensor) -> Independent:
    """``N(loc, diag scale^2)`` from ``(loc, raw scale)`` halves, ``scale = softplus(raw) + 1e-5``."""
    loc, raw_scale = params.chunk(2, dim=-1)
    return Independent(Normal(loc, F.softplus(raw_scale) + MIN_SCALE, validate_args=False), 1)


class GaussianChain(Distribution):
    """A two-layer Gaussian ``[z1, z2]``: one layer ``first`` drawn directly, the other from
    ``conditional(first sample)``; ``first_is_z1`` says which, ``split`` where z1 ends, ``size`` the width of
    ``[z1, z2]``. ``log_prob`` is the sum of the two layers'
    log-densities at any point; ``rsample`` is ancestral and reparameterized. ``mean`` is the first layer's
    mean with the other layer's conditional mean given it (a location, for plots)."""

    has_rsample = True
    support = constraints.independent(constraints.real, 1)
    arg_constraints: ClassVar[dict] = {}  # its parameters are networks, not constrained tensors

    def __init__(
        self,
        first: Independent,
        conditional: Callable[[Tensor], Independent],
        first_is_z1: bool,
        split: int,
        size: int,
    ) -> None:
        self.first, self.conditional, self.first_is_z1, self.split = first, conditional, first_is_z1, split
        super().__init__(first.batch_shape, torch.Size([size]), validate_args=False)

    def _join(self, first: Tensor, second: Tensor) -> Tensor:
        return torch.cat([first, second] if self.first_is_z1 else [second, first], dim=-1)

    def _parts(self, z: Tensor) -> tuple[Tensor, Tensor]:
        z1, z2 = z[..., : self.split], z[..., self.split :]
        return (z1, z2) if self.first_is_z1 else (z2, z1)

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        first = self.first.rsample(sample_shape)
        return self._join(first, self.conditional(first).rsample())

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, z: Tensor) -> Tensor:
        first, second = self._parts(z)
        return self.first.log_prob(first) + self.conditional(first).log_prob(second)

    @property
    def mean(self) -> Tensor:
        return self._join(self.first.mean, self.conditional(self.first.mean).mean)


class TwoLayerLatent(LatentFamily):
    """``q(z1|x)``: Normal from the encoder's features; ``q(z2|z1)``: Normal from an MLP of ``z1``;
    ``p(z2) = N(0, I)``; ``p(z1|z2)``: Normal from an MLP of ``z2``; the decoder reads ``z1``. Samples are
    ``[z1, z2]``. Burda et al.'s MNIST model: ``z1`` 100, ``z2`` 50, both MLPs 100-100 tanh (``hidden``).
    No closed-form KL (the registry has none for the chains): objectives use ``log q(z) - log p(z)`` at their
    sample."""

    prior_state = ("down",)  # p(z1|z2)

    def __init__(
        self,
        in_features: int,
        dim: int = 100,
        top: int = 50,
        hidden: Sequence[int] = (100, 100),
        activation: str = "Tanh",
    ) -> None:
        super().__init__(in_features)
        if dim < 1 or top < 1:
            raise ConfigError(f"model.latent.dim={dim} and model.latent.top={top} must be >= 1")
        self.dim, self.top, self.sample_features = dim, top, dim
        self.head = nn.Linear(in_features, 2 * dim)
        width = list(hidden)[-1] if hidden else None
        self.up = nn.Sequential(mlp([dim, *hidden], activation), nn.Linear(width or dim, 2 * top))  # q(z2|z1)
        self.down = nn.Sequential(
            mlp([top, *hidden], activation), nn.Linear(width or top, 2 * dim)
        )  # p(z1|z2)
        self.register_buffer("top_loc", torch.zeros(top), persistent=False)

    def posterior(self, features: Tensor) -> GaussianChain:
        first = diagonal_normal(self.head(features))
        return GaussianChain(
            first, lambda z1: diagonal_normal(self.up(z1)), True, self.dim, self.dim + self.top
        )

    def prior(self) -> GaussianChain:
        top = Independent(Normal(self.top_loc, torch.ones_like(self.top_loc), validate_args=False), 1)
        return GaussianChain(
            top, lambda z2: diagonal_normal(self.down(z2)), False, self.dim, self.dim + self.top
        )

    def decoder_input(self, z: Tensor) -> Tensor:
        return z[..., : self.dim]
