"""The semi-supervised objective of Kingma, Rezende, Mohamed & Welling (2014) for their model M2: labelled
images ``(x, y)`` and unlabelled images ``x``, whose class is summed out under the classifier ``q(y|x)``."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from vae_zoo.conditions.label import UNLABELLED
from vae_zoo.errors import ConfigError
from vae_zoo.objectives.elbo import ELBO
from vae_zoo.objectives.objective import ObjectiveOutput, estimator_term, own_loss_term
from vae_zoo.packed_batch import per_image

if TYPE_CHECKING:
    from vae_zoo.forward_path import ForwardPath


def per_class(per_row: Tensor, classes: int) -> Tensor:
    """A term per row of ``for_every_class`` (any estimator draws before the rows) as ``(B, classes)``: per
    image and class, averaged over the draws."""
    return per_row.reshape(-1, per_row.shape[-1]).mean(0).reshape(-1, classes)


def summed_out(per_class: Tensor, weights: Tensor, log_weights: Tensor | None = None) -> Tensor:
    """``sum_y w(y) f(x, y)`` per image, from ``f`` and the weights ``w`` (each ``(B, classes)``, ``w`` summing
    to one per image); with ``log_weights``, ``sum_y w(y) (f(x, y) + log w(y))``: less the entropy of ``w``."""
    return (weights * (per_class if log_weights is None else per_class + log_weights)).sum(-1)


class SemiSupervisedELBO(ELBO):
    """Minimises the mean over a batch whose labels are known (``y >= 0``) or not (``UNLABELLED``) of

        labelled:    L(x, y) + alpha * -log q(y|x)
        unlabelled:  U(x) = sum_y q(y|x) L(x, y) - H(q(y|x))
        L(x, y) = -log p(x|z, y) + beta * KL(q(z|x, y) || p(z)) - log p(y),   p(y) = 1 / classes

    (Kingma et al. 2014, eqs. 6-9): with ``beta = 1``, ``L`` bounds ``-log p(x, y)`` and ``U`` bounds
    ``-log p(x)``. Every image's ``L(x, y)`` is computed for every class at once (one row per class), weighted
    by ``q(y|x)`` where its label is unknown and by the label's one-hot where it is known (so every batch has one
    layout, and packed models keep theirs, ``vae_zoo.packing``); each row's estimator surrogate enters with its
    row's weight, so any estimator trains the encoder; the
    classifier learns from ``U`` through ``q(y|x)`` and from the labelled images' ``alpha``-weighted
    cross-entropy. Kingma et al. weigh the labelled images' mean cross-entropy 0.1 times the mean bound over the
    data (their ``alpha = 0.1 N`` on sums); with ``m`` labelled images among a batch of ``B`` that is
    ``alpha = 0.1 B / m`` (0.9 for 16 of 144). The default 50 classified better on MNIST with 100 labels
    (validation error after 6 epochs of ``experiment=m2_mnist``: 27.9% at 50, 30.1% at 10, 39.2% at 1).
    Terms: ``elbo`` (each image's own bound, ``L`` with ``beta = 1`` or ``U``), ``recon`` and ``kl``
    (summed out under ``q(y|x)`` where the label is unknown), ``class_nll`` (the labelled images'
    ``-log q(y|x)``). Evaluation reports ``val/elbo_marginal``: ``U(x)`` with exact samples, the bound on
    ``-log p(x)`` of the images with their labels withheld. Needs ``condition=label`` and ``classifier=mlp``.
    """

    bound_name = "elbo_marginal"
    infers_labels = True
    trains_discriminator = False
    per_model_settings = ("alpha",)

    def __init__(
        self, alpha: float = 50.0, beta: float = 1.0, kl: str = "auto", gradient: str = "total"
    ) -> None:
        super().__init__(beta, kl, gradient)
        if not alpha >= 0:
            raise ConfigError(f"objective.alpha={alpha} must be >= 0")
        self.alpha = float(alpha)

    def bind(self, model: ForwardPath) -> None:
        super().bind(model)
        if model.classifier is None:
            raise ConfigError(
                "objective=semi_supervised infers unknown labels with q(y|x): add classifier=mlp condition=label"
            )

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, {super().extra_repr()}"

    def forward(self, model: ForwardPath, x: Tensor) -> ObjectiveOutput:
        labels = model.labels
        known = (labels != UNLABELLED)[:, None]
        log_q_y = model.class_log_probs(x)
        classes = log_q_y.shape[-1]
        # every image's L(x, y) for every class, weighted by its label's one-hot where it is known, else by
        # q(y|x) with the entropy (log w = 0 where known: the one-hot's 1 log 1 and 0 log 0 vanish)
        one_hot = nn.functional.one_hot(labels.clamp(min=0), classes).to(log_q_y.dtype)
        weights = torch.where(known, one_hot, log_q_y.exp())
        log_weights = torch.where(known, 0.0, log_q_y)
        with model.for_every_class(x) as rows:
            sample_terms = self.terms_per_image(model, rows)
        recon, kl, surrogate = sample_terms.recon, sample_terms.kl, sample_terms.surrogate
        log_p_y = math.log(classes)
        class_nll = torch.where(known, -log_q_y, 0.0).gather(-1, labels.clamp(min=0)[:, None]).squeeze(-1)
        bounds = summed_out(per_class(recon + self.weighted_kl(kl), classes), weights, log_weights) + log_p_y
        loss = model.batch_mean(bounds + per_image(self.alpha, len(x)) * class_nll)
        # each row's surrogate (and the latent family's own loss) weighted as its L(x, y): its image's mean over the
        # classes' rows, times classes
        row_weights = weights.detach().reshape(-1) * classes
        if surrogate is not None:
            loss = loss + estimator_term(surrogate * row_weights, model.batch_mean)
        own_term, own_terms = own_loss_term(model, sample_terms.posterior, row_weights)
        loss = loss + own_term
        labelled = model.batch_mean(known.squeeze(-1).to(x.dtype)).clamp(min=1 / len(x))
        terms = {
            "elbo": model.batch_mean(
                summed_out(per_class(recon + kl, classes), weights, log_weights) + log_p_y
            ),
            "recon": model.batch_mean(summed_out(per_class(recon, classes), weights)),
            "kl": model.batch_mean(summed_out(per_class(kl, classes), weights)),
            "class_nll": model.batch_mean(class_nll) / labelled,  # the labelled images' mean (0 without)
            **own_terms,
        }
        return ObjectiveOutput(loss, {name: value.detach() for name, value in terms.items()})

    def bound(self, model: ForwardPath, x: Tensor) -> Tensor:
        """``U(x)`` per image, every class's ``L(x, y)`` with exact samples (the closed-form KL where there
        is one)."""
        log_q_y = model.class_log_probs(x)
        classes = log_q_y.shape[-1]
        with model.for_every_class(x) as rows:
            per_row = model.negative_elbo_terms(rows, lambda q: q.sample())
        per_image_and_class = per_class(per_row.recon + per_row.kl, classes) + math.log(classes)
        return summed_out(per_image_and_class, log_q_y.exp(), log_q_y)
