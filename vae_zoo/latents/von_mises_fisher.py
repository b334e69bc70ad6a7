"""Hyperspherical latents: a von Mises-Fisher posterior on the unit sphere with a uniform prior (Davidson et al.
2018's S-VAE)."""

from __future__ import annotations

from vae_zoo.latents.hyperspherical import HypersphericalLatent
from vae_zoo.latents.von_mises_fisher_distribution import VonMisesFisher


class VonMisesFisherLatent(HypersphericalLatent):
    """``q(z|x) = vMF(mu(x), kappa(x))`` on the unit sphere S^(dim-1) in R^dim, with ``HypersphericalLatent``'s
    head, settings and uniform prior.

    The sample is reparameterized (``rsample``: the cosine ``w = mu^T z`` by the implicit rule); closed-form KL
    (``kl_von_mises_fisher_uniform``): ``kappa A(kappa) + log C_dim(kappa) + log |S^(dim-1)|``, with
    ``A = I_(dim/2) / I_(dim/2-1)``, and mean ``A(kappa) mu``.
    """

    distribution = VonMisesFisher
