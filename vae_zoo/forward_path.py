"""What objectives and priors may ask of the probabilistic model: its forward path, as a protocol.

Objectives (``vae_zoo.objectives``) and priors (``vae_zoo.priors``) receive the model as this narrow
interface, never the class that implements it (``vae_zoo.probabilistic_model.ProbabilisticModel``) nor the
LightningModule that trains it, so they import neither. Every method runs its distributions in float32 with
autocast off; the encoder and decoder run under autocast where it is on.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

import torch
from torch import Tensor
from torch.distributions import Distribution

if TYPE_CHECKING:
    from vae_zoo.estimators.estimator import Cost, Draw
    from vae_zoo.latents.family import LatentFamily
    from vae_zoo.objectives.factor_discriminator import FactorDiscriminator


class ForwardPath(Protocol):
    """The pieces of ``-log p(x|z) + KL(q(z|x) || p(z))`` and of ``log w = log p(x|z) + log p(z) - log q(z|x)``."""

    latent: LatentFamily
    #: ``q(y|x)``'s network where the model infers the label (``classifier=mlp``), else None
    classifier: torch.nn.Module | None
    #: the total correlation's discriminator where the model has one (``discriminator=mlp``), else None
    discriminator: FactorDiscriminator | None
    #: what ``given`` set: each image's class (a tensor), ``ABSENT``, or None
    labels: Tensor | str | None
    #: whether torch's KL registry has ``KL(q || p)`` for the posterior and the prior (decided once, at build time)
    closed_form_kl: bool
    #: models packed along the batch, their images in turn (``vae_zoo.packing``); 1 unpacked
    models: int

    def batch_mean(self, per_image: Tensor) -> Tensor:
        """The mean over a batch's images (and any sample dims before them): a scalar, or one per model where
        models are packed along the batch (``vae_zoo.packing``)."""

    def autocast_off(self) -> AbstractContextManager:
        """A context in which autocast is off (for sampling, log-probabilities and KL)."""

    def posterior(self, x: Tensor, flow: bool = True) -> Distribution:
        """``q(z|x)``, through the flow if there is one (``flow=False``: the base posterior)."""

    def probe_posterior(self) -> Distribution:
        """The posterior for one all-zero feature vector, through any flow (what start-up checks are tried on)."""

    def prior_distribution(self) -> Distribution:
        """``p(z)``, the prior component's (a conditional prior's ``p(z|y)``: one per image given)."""

    def given(self, labels: Tensor | None | str) -> AbstractContextManager:
        """A context in which a conditional model computes on images of classes ``labels``, or ``ABSENT``
        (``vae_zoo.conditions.label``: the zero condition)."""

    def condition_input(self, rows: int) -> Tensor | None:
        """The networks' condition ``c(y)`` of each image given (``rows`` of the zero condition for ``ABSENT``;
        None for an unconditional model)."""

    def for_every_class(self, x: Tensor) -> AbstractContextManager[Tensor]:
        """A context yielding each image of ``x`` once per class, image by image (``(B * classes, ...)``), in which
        the model computes on those rows given their classes."""

    def class_log_probs(self, x: Tensor) -> Tensor:
        """``log q(y|x)`` ``(B, classes)`` from the classifier (only where the model has one)."""

    def training_sample(self, q: Distribution, sample_shape: torch.Size | tuple[int, ...] = ()) -> Draw:
        """The estimator's training sample(s) of ``q`` (``.value``), with what its surrogate needs."""

    def nll(self, x: Tensor, z: Tensor) -> Tensor:
        """``-log p(x|z)`` per sample and image."""

    def kl(self, q: Distribution) -> Tensor:
        """The closed-form ``KL(q || p)`` per image (only where the model has one)."""

    def kl_per_unit(self, q: Distribution) -> Tensor:
        """The closed-form ``KL(q || p)`` per image and latent unit, ``(B, units)`` (whose sum is ``kl``)."""

    def unit_log_probs(self, q: Distribution, values: Tensor) -> Tensor:
        """``log q(value_u)`` per latent unit, ``(..., B, units)``, for ``values`` broadcast against q's images
        (only where q is ``Independent`` over the units, ``capabilities.INDEPENDENT_UNITS``)."""

    def kl_estimate(self, q: Distribution, z: Tensor, p: Distribution | None = None) -> Tensor:
        """``log q(z) - log p(z)`` per sample and image."""

    def log_weights(self, x: Tensor, q: Distribution, z: Tensor, p: Distribution | None = None) -> Tensor:
        """``log w`` per sample and image."""

    def surrogate(self, q: Distribution, draw: Draw, cost: Cost) -> Tensor | None:
        """The estimator's surrogate term for ``cost`` at ``draw``; in training its statistics then move."""

    def latent_loss(self, q: Distribution, weights: Tensor | None = None) -> Tensor | None:
        """The latent family's own loss per image at ``q`` (``LatentFamily.own_loss``), or None; in training its
        statistics then move with this batch, weighted by ``weights``."""

    def importance_weighted_nll(self, x: Tensor, k: int) -> Tensor:
        """``-log (1/k) sum_i w_i`` per image, with exact samples."""
