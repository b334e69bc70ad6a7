"""What hyperspherical latent families share: a mean direction and a concentration from one head, points on
the unit sphere as samples, and the uniform distribution on the sphere as the prior."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution

from vae_zoo.errors import ConfigError
from vae_zoo.latents.family import LatentFamily
from vae_zoo.latents.sphere import HypersphericalUniform


class HypersphericalLatent(LatentFamily):
    """``q(z|x) = distribution(mu(x), kappa(x))`` on the unit sphere S^(dim-1) in R^dim, ``mu`` the head's first
    ``dim`` outputs scaled to length 1 and ``kappa = softplus(.) + floor`` from one more; ``p(z) = U(S^(dim-1))``.
    The decoder reads z's ``dim`` coordinates. ``dim = 3`` is the 2-sphere: ``dim`` counts coordinates, one more
    than the sphere's own dimension (a Normal latent of ``dim - 1`` has as many degrees of freedom). A family
    names its ``distribution``, which has a ``mean``, an ``rsample`` and a KL to the uniform registered."""

    spherical = True
    #: the posterior's distribution, made from the mean direction ``loc`` and the ``concentration``
    distribution: ClassVar[type[Distribution]]

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

    def posterior(self, features: Tensor) -> Distribution:
        direction, raw_concentration = self.head(features).split([self.sample_features, 1], dim=-1)
        loc = F.normalize(direction, dim=-1)
        concentration = F.softplus(raw_concentration.squeeze(-1)) + self.floor
        return self.distribution(loc, concentration, validate_args=False)

    def prior(self) -> HypersphericalUniform:
        return HypersphericalUniform(self.prior_anchor, validate_args=False)

    def location(self, q: Distribution) -> Tensor:
        """The mean direction ``mu`` (the mean itself, a multiple of ``mu`` shorter than 1, lies inside the
        sphere)."""
        return q.loc

    def unit_locations(self, q: Distribution) -> Tensor:
        """Each coordinate of the mean ``E[z]``, a multiple of ``mu`` (Burda et al.'s ``E_q[z]``): a posterior
        spread evenly over the sphere (``kappa`` near 0) has a mean near 0 whatever its direction, and counts
        as inactive."""
        return q.mean.unsqueeze(-1)
