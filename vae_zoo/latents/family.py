"""The latent-family contract: parameter head, posterior, prior, KL, and the estimators it accepts."""

from __future__ import annotations

from abc import abstractmethod

from torch import Tensor, nn
from torch.distributions import Distribution, kl_divergence

KL_MODES = ("analytic", "mc")


class LatentFamily(nn.Module):
    """Maps encoder features to ``q(z|x)``; owns the prior ``p(z)`` and ``KL(q || p)``.

    Distributions are batched over images with the latent dimensions as event dimensions, so
    ``log_prob`` and ``kl`` return one value per image.
    """

    #: names of the estimators that give correct gradients for this family
    estimators: tuple[str, ...] = ()
    #: the ``model.kl`` modes this family supports
    kl_modes: tuple[str, ...] = KL_MODES
    #: width of a flattened sample, i.e. the decoder's input size
    sample_features: int

    @abstractmethod
    def posterior(self, features: Tensor) -> Distribution:
        """``q(z|x)`` from encoder features (called in float32)."""

    @abstractmethod
    def prior(self) -> Distribution:
        """``p(z)``."""

    def decoder_input(self, z: Tensor) -> Tensor:
        """A sample as the decoder reads it: ``(..., sample_features)``."""
        return z

    def kl(self, q: Distribution, z: Tensor, mode: str) -> Tensor:
        """``KL(q || p)`` per image: closed form (``analytic``) or the one-sample ``log q(z) - log p(z)``."""
        if mode == "analytic":
            return kl_divergence(q, self.prior())
        return q.log_prob(z) - self.prior().log_prob(z)
