"""Hyperspherical latents: a von Mises-Fisher posterior on the unit sphere with a uniform prior (Davidson et al.
2018's S-VAE)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vae_zoo.errors import ConfigError
from vae_zoo.latents.family import LatentFamily
from vae_zoo.latents.sphere import HypersphericalUniform
from vae_zoo.latents.von_mises_fisher_distribution import VonMisesFisher


class VonMisesFisherLatent(LatentFamily):
    """``q(z|x) = vMF(mu(x), kappa(x))`` on the unit sphere S^(dim-1) in R^dim, ``mu`` the head's first ``dim``
    outputs scaled to length 1 and ``kappa = softplus(.) + floor`` from one more; ``p(z) = U(S^(dim-1))``.
    The decoder reads z's ``dim`` coordinates. ``dim = 3`` is the 2-sphere: ``dim`` counts coordinates, one more
    than the sphere's own dimension (a Normal latent of ``dim - 1`` has as many degrees of freedom).

    The sample is reparameterized (``rsample``: the cosine ``w = mu^T z`` by the implicit rule); closed-form KL
    (``kl_von_mises_fisher_uniform``): ``kappa A(kappa) + log C_dim(kappa) + log |S^(dim-1)|``, with
    ``A = I_(dim/2) / I_(dim/2-1)``.
    """

    spherical = True

    def __init__(self, in_features: int, dim: int = 10, floor: float = 1.0) -> None:
        super().__init__(in_features)
        if dim < 2:
            raise ConfigError(f"model.latent.dim={dim} must be >= 2 (the sphere in R^dim; 2 is the circle)")
        if floor <= 0:
            raise ConfigError(f"model.latent.floor={floor} must be > 0")
        self.sample_features = dim
        self.floor = floor
        self.head = nn.Linear(in_features, dim + 1)
        self.register_buffer("prior_anchor", torch.zeros(dim), persistent=False)

    def posterior(self, features: Tensor) -> VonMisesFisher:
        direction, raw_concentration = self.head(features).split([self.sample_features, 1], dim=-1)
        loc = F.normalize(direction, dim=-1)
        concentration = F.softplus(raw_concentration.squeeze(-1)) + self.floor
        return VonMisesFisher(loc, concentration, validate_args=False)

    def prior(self) -> HypersphericalUniform:
        return HypersphericalUniform(self.prior_anchor, validate_args=False)

    def location(self, q: VonMisesFisher) -> Tensor:
        """The mean direction ``mu`` (the mean itself, ``A(kappa) mu``, lies inside the sphere)."""
        return q.loc

    def unit_locations(self, q: VonMisesFisher) -> Tensor:
        """Each coordinate of the mean ``E[z] = A(kappa) mu`` (Burda et al.'s ``E_q[z]``): a posterior spread
        evenly over the sphere (``kappa`` near 0) has a mean near 0 whatever its direction, and counts as inactive."""
        return q.mean.unsqueeze(-1)
