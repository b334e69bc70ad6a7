"""The objective contract: the training loss and its named terms, computed from the model's pieces."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from torch import Tensor, nn
from torch.distributions import Distribution

from vae_zoo.capabilities import ANY, FIXED_PARAMETERS, Requirement

if TYPE_CHECKING:
    from vae_zoo.forward_path import ForwardPath


class ObjectiveOutput(NamedTuple):
    """``loss`` to minimise (a scalar with gradient; one per model where models are packed,
    ``ForwardPath.batch_mean``) and named per-batch means (detached, likewise), e.g.
    ``{"elbo": ..., "recon": ..., "kl": ...}``. Logging (``train/<name>``), the epoch means, the
    non-finite guard and the progress bar read ``terms``; nothing downstream assumes which ones."""

    loss: Tensor
    terms: dict[str, Tensor]


def estimator_term(
    surrogate: Tensor | None, batch_mean: Callable[[Tensor], Tensor] = Tensor.mean
) -> Tensor | float:
    """An estimator's surrogate (or any term trained for its gradient alone) as a loss term with its gradient and
    a value of exactly 0, so ``loss`` keeps the value of the objective it estimates (``s - stop(s)``, DiCE's "magic
    box"); averaged over the batch by ``batch_mean`` (the model's: one mean per packed model)."""
    if surrogate is None:
        return 0.0
    surrogate = batch_mean(surrogate)
    return surrogate - surrogate.detach()


def own_loss_term(
    model: ForwardPath, q: Distribution, weights: Tensor | None = None
) -> tuple[Tensor | float, dict[str, Tensor]]:
    """The latent family's own loss per image at the posterior ``q`` (VQ-VAE's codebook and commitment terms,
    ``ForwardPath.latent_loss``, which in training moves the family's statistics too), each image's weighted by
    ``weights`` where given, as a loss term with its gradient and a value of 0; and its batch mean, as a term named
    by the family. ``(0.0, {})`` for a family without one."""
    own = model.latent_loss(q, weights)
    if own is None:
        return 0.0, {}
    weighted = own if weights is None else own * weights
    return estimator_term(weighted, model.batch_mean), {
        model.latent.own_loss_name: model.batch_mean(weighted).detach()
    }


class Objective(ABC, nn.Module):
    """A training loss of the probabilistic model, built from ``conf/objective/<name>.yaml``.

    ``forward(model, x)`` draws what it needs through the model's forward path (``vae_zoo.forward_path``:
    ``model.posterior``, ``model.training_sample``, ``model.nll``, ``model.log_weights``, ``model.surrogate``).
    ``bound_name``, if not None, names the objective's own evaluation bound, which validation and test
    report as ``val/<bound_name>`` beside ``val/elbo``; ``bound(model, x)`` computes it per image with
    exact posterior samples.
    """

    #: the objective evaluates ``log q(z)`` at the training sample, so the estimator's sample must lie in
    #: q's support (``Estimator.exact_samples``)
    needs_exact_samples: bool = False
    #: samples per image the cost is a joint function of (the importance-weighted bound's k)
    samples_per_image: int = 1
    bound_name: str | None = None
    #: the KL's weight in the loss, for objectives that have one (``callbacks.kl_warmup`` sets it); else None
    beta: float | None = None
    #: it trains the model's classifier ``q(y|x)``, and on images whose label is ``UNLABELLED`` (``data.labels``)
    infers_labels: bool = False
    #: it trains the model's total-correlation discriminator (``vae_zoo.objectives.factor_discriminator``)
    trains_discriminator: bool = False
    #: its settings (beside ``beta``) that each model of a pack may have its own of, a number or one per model
    #: (``vae_zoo.packing``), which the objective spreads over each model's images (``packed_batch.per_image``)
    per_model_settings: tuple[str, ...] = ()
    #: ``total``, the objective's own gradient, or ``dreg``, the doubly reparameterized one
    #: (``vae_zoo.objectives.doubly_reparameterized``), for objectives with an ``objective.gradient`` setting
    gradient: str = "total"
    #: images in the training set, which training sets at its start (``VAE.setup``) for objectives that estimate
    #: an aggregate over it (the ELBO's total correlation); None before
    training_images: int | None = None

    @property
    def requires(self) -> Requirement:
        """What it needs of the posterior (``vae_zoo.capabilities``; checked with the pairing): with ``dreg``,
        parameters it can hold fixed."""
        return FIXED_PARAMETERS if self.gradient == "dreg" else ANY

    @property
    def needs_reparameterized_samples(self) -> bool:
        """Whether the estimator's sample must carry its whole gradient (``Estimator.reparameterized``): with
        ``dreg``, whose gradient flows through the sample alone."""
        return self.gradient == "dreg"

    @property
    def plain_settings(self) -> str:
        """The settings that drop what it needs beyond the ELBO's (``requires``, a reparameterized sample): the
        fix a refused pairing names."""
        return "objective.gradient=total"

    def bind(self, model: ForwardPath) -> None:
        """Learn what the model offers before the pairing check (whether its KL has a closed form,
        ``model.closed_form_kl``; whether it has a classifier); refuse with a ``ConfigError`` what it cannot
        use."""

    @abstractmethod
    def forward(self, model: ForwardPath, x: Tensor) -> ObjectiveOutput:
        """The loss on batch ``x`` and its named terms."""

    def bound(self, model: ForwardPath, x: Tensor) -> Tensor:
        """The objective's own negative bound per image, with exact samples (only if ``bound_name``)."""
        raise NotImplementedError(f"{type(self).__name__} has no bound beside the ELBO")
