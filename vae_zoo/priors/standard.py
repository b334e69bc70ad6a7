"""The latent family's own prior (N(0, I) for the Normal, Gamma(0.3, 0.3) for the Gamma, ...)."""

from __future__ import annotations

from torch.distributions import Distribution

from vae_zoo.priors.prior import Prior


class StandardPrior(Prior):
    """``p(z) = latent.prior()``; the KL is the closed form the family registers, where it does."""

    def distribution(self, model) -> Distribution:
        return model.latent.prior()
