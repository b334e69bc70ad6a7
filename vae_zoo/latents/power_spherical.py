"""Hyperspherical latents with a power spherical posterior and a uniform prior (De Cao & Aziz 2020)."""

from __future__ import annotations

from vae_zoo.latents.hyperspherical import HypersphericalLatent
from vae_zoo.latents.power_spherical_distribution import PowerSpherical


class PowerSphericalLatent(HypersphericalLatent):
    """``q(z|x) = PowerSpherical(mu(x), kappa(x))``, density ``∝ (1 + mu^T z)^kappa`` on the unit sphere
    S^(dim-1) in R^dim, with ``HypersphericalLatent``'s head, settings and uniform prior. The sample is
    reparameterized without rejection (a Beta draw for the cosine), and the KL to the uniform prior is
    closed-form with log-gamma and digamma in place of Bessel functions (``power_spherical_distribution``);
    mean ``kappa / (kappa + dim - 1) mu``."""

    distribution = PowerSpherical
