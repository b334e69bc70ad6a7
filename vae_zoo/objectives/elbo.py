"""The evidence lower bound (Kingma & Welling 2014), with a KL weight (beta-VAE; KL warm-up)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from vae_zoo.conditions.label import ABSENT
from vae_zoo.errors import ConfigError
from vae_zoo.estimators.estimator import Cost
from vae_zoo.objectives.doubly_reparameterized import checked_gradient, parameters_stopped
from vae_zoo.objectives.objective import Objective, ObjectiveOutput, estimator_term
from vae_zoo.packed_batch import per_image

if TYPE_CHECKING:
    from vae_zoo.forward_path import ForwardPath

KL_MODES = ("auto", "analytic", "mc")


class ELBO(Objective):
    """Minimises ``-log p(x|z) + beta * KL(q(z|x) || p(z))`` per image, ``z`` from the estimator.

    ``kl: analytic`` uses the closed form (its exact gradient, no sampling noise), which the family's own
    prior has and a learned prior, a flow or two stochastic layers lack (refused with one line there);
    ``kl: mc`` the one-sample ``log q(z) - log p(z)`` at the training sample (needs an exact sample);
    ``kl: auto`` (the default) the closed form where the model has one, else the estimate.
    ``beta`` weights the KL in the loss (``KLWarmup`` raises it from 0 to 1); the reported terms are
    the true negative ELBO (beta = 1) and its parts. The estimator's cost, the part of the loss that
    depends on the sample, is the reconstruction (plus ``beta`` times the one-sample KL with ``kl: mc``).
    An estimator that draws several samples per image (``draws``) makes it an average over them.
    ``gradient: dreg`` drops the score term of the one-sample ``log q(z)`` from the gradient (sticking the
    landing, ``vae_zoo.objectives.doubly_reparameterized``): with ``kl: mc`` (``auto`` chooses it) and a
    reparameterized sample; the loss's value is unchanged. ``free_bits: lambda > 0`` trains the KL as
    ``sum_j max(lambda, mean_x KL_j)`` over the latent units (Kingma et al. 2016's free bits, ``free_bits_kl``): with
    the closed-form KL; each model of a pack may have its own ``lambda``.
    """

    per_model_settings = ("free_bits",)

    def __init__(
        self, beta: float = 1.0, kl: str = "auto", gradient: str = "total", free_bits: float = 0.0
    ) -> None:
        super().__init__()
        if kl not in KL_MODES:
            raise ConfigError(f"objective.kl={kl!r} is not one of {', '.join(KL_MODES)}")
        if beta < 0:
            raise ConfigError(f"objective.beta={beta} must be >= 0")
        self.beta, self.kl, self.gradient = float(beta), kl, checked_gradient(gradient)
        if self.gradient == "dreg" and kl == "analytic":
            raise ConfigError(
                "objective.gradient=dreg drops the score term of log q(z) at the training sample, which "
                "objective.kl=analytic does not evaluate -- set objective.kl=mc (or auto)"
            )
        if not free_bits >= 0:
            raise ConfigError(f"objective.free_bits={free_bits} must be >= 0 (nats per latent unit; 0: off)")
        self.free_bits = float(free_bits)
        if self.free_bits and (kl == "mc" or self.gradient == "dreg"):
            given = "objective.kl=mc" if kl == "mc" else "objective.gradient=dreg (the one-sample KL)"
            raise ConfigError(
                f"objective.free_bits={self.free_bits} needs the closed-form KL of each latent unit, and {given} "
                "trains another -- set objective.free_bits=0, or drop that setting"
            )
        self.needs_exact_samples = kl == "mc"

    def bind(self, model: ForwardPath) -> None:
        if self.kl == "analytic" and not model.closed_form_kl:
            raise ConfigError(
                "objective.kl=analytic needs a closed-form KL, which this model's prior, flow or latent layers "
                "lack -- set objective.kl=auto (or mc): the one-sample estimate at the training sample"
            )
        if self.free_bits and not model.closed_form_kl:
            raise ConfigError(
                f"objective.free_bits={self.free_bits} needs the closed-form KL of each latent unit, which this "
                "model's prior, flow or latent layers lack -- set objective.free_bits=0"
            )
        if self.free_bits:
            with model.given(
                ABSENT
            ):  # the KL per unit, tried once on a probe: refused where there are no units
                model.kl_per_unit(model.probe_posterior())
        if self.kl == "auto":
            self.kl = "analytic" if model.closed_form_kl and self.gradient == "total" else "mc"
            self.needs_exact_samples = self.kl == "mc"

    def extra_repr(self) -> str:
        settings = f"beta={self.beta}, kl={self.kl}" + (", gradient=dreg" if self.gradient == "dreg" else "")
        return settings + (f", free_bits={self.free_bits}" if self.frees_bits else "")

    @property
    def frees_bits(self) -> bool:
        """Whether a model trains with free bits: ``free_bits > 0``, or one value per packed model (set where the
        models' values differ, so one of them is > 0)."""
        return isinstance(self.free_bits, Tensor) or self.free_bits > 0

    def forward(self, model: ForwardPath, x: Tensor) -> ObjectiveOutput:
        recon, kl, surrogate = self.terms_per_image(model, x, per_unit=self.frees_bits)
        trained_kl = kl
        if self.frees_bits:
            trained_kl, kl = self.free_bits_kl(model, kl), kl.sum(-1)
        loss = model.batch_mean(recon + self.weighted_kl(trained_kl)) + estimator_term(
            surrogate, model.batch_mean
        )
        recon, kl = model.batch_mean(recon).detach(), model.batch_mean(kl).detach()
        return ObjectiveOutput(loss, {"elbo": recon + kl, "recon": recon, "kl": kl})

    def weighted_kl(self, kl: Tensor) -> Tensor:
        """``beta * KL`` for a KL per image (its last dim): ``beta`` a number, or one per packed model
        (``vae_zoo.packing``: each model's own KL weight or warm-up)."""
        return per_image(self.beta, kl.shape[-1]) * kl

    def free_bits_kl(self, model: ForwardPath, kl_units: Tensor) -> Tensor:
        """Per image ``sum_j [m_j KL_j + (1 - m_j) lambda]`` from its KL per unit ``(B, units)``, with
        ``m_j = [mean KL_j > lambda]`` over its model's images held constant: its batch mean is
        ``sum_j max(lambda, mean KL_j)`` (Kingma et al. 2016's free bits), whose gradient leaves alone each unit
        whose mean KL is below ``lambda`` nats (``lambda`` a number, or one per packed model)."""
        per_model = kl_units.unflatten(0, (model.models, -1))
        free = self.free_bits.view(-1, 1, 1) if isinstance(self.free_bits, Tensor) else self.free_bits
        above = per_model.detach().mean(1, keepdim=True) > free
        return torch.where(above, per_model, free).flatten(0, 1).sum(-1)

    def terms_per_image(
        self, model: ForwardPath, x: Tensor, per_unit: bool = False
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """``-log p(x|z)`` and the KL (closed form, or the estimate at ``z``) per image at the estimator's
        training sample ``z`` (``per_unit``: the closed form per image and latent unit), and the estimator's
        surrogate for the cost (None for pathwise estimators)."""
        q = model.posterior(x)
        draw = model.training_sample(q)
        z = draw.value
        recon = model.nll(x, z)
        if self.kl == "analytic":
            kl = model.kl_per_unit(q) if per_unit else model.kl(q)
            cost = Cost(recon, lambda z: model.nll(x, z), x)
        else:
            kl = model.kl_estimate(q if self.gradient == "total" else parameters_stopped(q), z)
            cost = Cost(
                recon + self.weighted_kl(kl),
                lambda z: model.nll(x, z) + self.weighted_kl(model.kl_estimate(q, z)),
                x,
            )
        return recon, kl, model.surrogate(q, draw, cost)
