"""The latent-family contract: parameter head, posterior, prior, KL, and how a sample enters the decoder."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, kl_divergence

from vae_zoo.errors import ConfigError

#: the settings of ``model.latent.prior`` for a family whose prior is given by logits (categorical, Bernoulli, codes)
LOGIT_PRIORS = ("uniform", "learned")


def check_logit_prior(prior: str) -> None:
    """One line unless ``prior`` is one of ``LOGIT_PRIORS``."""
    if prior not in LOGIT_PRIORS:
        raise ConfigError(f"model.latent.prior={prior!r} is not one of {', '.join(LOGIT_PRIORS)}")


class LatentFamily(ABC, nn.Module):
    """Maps encoder features to ``q(z|x)``; owns its own prior ``p(z)`` (the ``prior=standard`` component).

    Built from ``conf/latent/<name>.yaml`` (``# @package model.latent``): the model passes
    ``in_features``, the config the family's own settings. Distributions are batched over images with the
    latent dimensions as event dimensions, so ``log_prob`` and ``kl`` give one value per image. What a
    posterior can do (``has_rsample``, a differentiable CDF, categorical logits) is read from the
    distribution itself when an estimator is paired with the family (``vae_zoo.capabilities``).
    """

    #: width of a flattened sample, i.e. the decoder's input size
    sample_features: int
    #: whether samples are angles, so that interpolations move along the shorter arc (von Mises)
    circular: bool = False
    #: whether samples are unit vectors, so that interpolations follow great circles and no single coordinate is
    #: swept (von Mises-Fisher)
    spherical: bool = False
    #: parameters used only broadcast against per-image values (a learned prior's): a packed model
    #: (``vae_zoo.packing``) gives each image its own model's copy
    per_image_parameters: tuple[str, ...] = ()
    #: the attributes holding its own prior's parameters (a learned prior's logits): what fitting the prior after
    #: training trains (``init.train=prior``, ``vae_zoo.initial_weights``)
    prior_state: tuple[str, ...] = ("prior_logits",)
    #: the name its ``own_loss`` is reported under (``train/<name>``), for a family that has one
    own_loss_name: str | None = None

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.in_features = in_features

    def register_prior_logits(self, shape: tuple[int, ...], prior: str) -> None:
        """``prior_logits`` of ``shape``, zeros (the uniform prior): a buffer, or for ``prior: learned`` a
        parameter."""
        logits = torch.zeros(shape)
        if prior == "learned":
            self.prior_logits = nn.Parameter(logits)
        else:
            self.register_buffer("prior_logits", logits, persistent=False)

    @abstractmethod
    def posterior(self, features: Tensor) -> Distribution:
        """``q(z|x)`` from encoder features (called in float32)."""

    @abstractmethod
    def prior(self) -> Distribution:
        """``p(z)``."""

    def decoder_input(self, z: Tensor) -> Tensor:
        """A sample (any leading sample dims) as the decoder reads it: ``(..., sample_features)``."""
        return z

    def onto_support(self, z: Tensor) -> Tensor:
        """The point of the latent space's support nearest ``z`` (any leading dims), where a path between two codes
        leaves it (an interpolation between two VQ-VAE code matrices): ``z`` itself unless overridden."""
        return z

    def location(self, q: Distribution) -> Tensor:
        """Where ``q`` sits in the latent space, for plots: its mean (circular families: the mean angle)."""
        return q.mean

    def unit_locations(self, q: Distribution) -> Tensor:
        """``(batch, units, coordinates)``: each latent unit's ``location``, whose spread across images says
        whether the unit is active (``vae_zoo.active_units``): a scalar unit's as one coordinate, a categorical
        variable's or a simplex point's (event ``(units, K)``) as its K probabilities."""
        location = self.location(q)
        return location.unsqueeze(-1) if len(q.event_shape) == 1 else location

    def kl(self, q: Distribution) -> Tensor:
        """``KL(q || p)`` per image against the family's own prior, through torch's KL registry (a family
        registers a closed form for its classes with ``register_kl``; ``NotImplementedError`` where none is)."""
        return kl_divergence(q, self.prior())

    def own_loss(self, q: Distribution) -> Tensor | None:
        """A loss per image that trains the family's own parameters where the bound's gradient does not reach them
        (VQ-VAE's codebook and commitment terms), which objectives add with a value of 0
        (``vae_zoo.objectives.objective.own_loss_term``); None for a family without one."""
        return None

    def update_statistics(self, q: Distribution, weights: Tensor | None = None) -> None:
        """Move running statistics (a VQ-VAE's moving-average codebook) with this training batch's posterior, each
        image's weighted by ``weights`` where given; nothing unless overridden. Called once per training batch, with
        the own loss, under ``no_grad``."""

    def probe_posterior(self) -> Distribution:
        """A posterior for one all-zero feature vector (on the CPU, where models are assembled): what an
        estimator's requirements are checked on."""
        with torch.no_grad():
            return self.posterior(torch.zeros(1, self.in_features))
