"""The evidence lower bound (Kingma & Welling 2014), with a KL weight (beta-VAE; KL warm-up)."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor
from torch.distributions import Distribution

from vae_zoo.capabilities import DIAGONAL_NORMAL, INDEPENDENT_UNITS, Requirement
from vae_zoo.conditions.label import ABSENT
from vae_zoo.errors import ConfigError
from vae_zoo.estimators.estimator import Cost
from vae_zoo.objectives.disentangled_covariance import (
    DIP_COVARIANCES,
    CovarianceDistance,
    code_covariance,
    distance_from_identity,
)
from vae_zoo.objectives.doubly_reparameterized import checked_gradient, parameters_stopped
from vae_zoo.objectives.factor_discriminator import DiscriminatorTerms, discriminator_terms
from vae_zoo.objectives.maximum_mean_discrepancy import mmd_squared
from vae_zoo.objectives.objective import Objective, ObjectiveOutput, estimator_term, own_loss_term
from vae_zoo.objectives.total_correlation import total_correlation
from vae_zoo.packed_batch import differs_from, per_image

if TYPE_CHECKING:
    from vae_zoo.forward_path import ForwardPath


class SampleTerms(NamedTuple):
    """What the ELBO's terms are at the training sample: per image ``recon`` and ``kl`` (per unit, asked for), the
    estimator's ``surrogate``, the total correlation's ``tc``, per model the ``mmd`` and the DIP covariance's
    distance from the identity, ``dip``, the discriminator's ``factor`` terms, and the ``posterior`` (for the latent
    family's own loss, ``own_loss_term``)."""

    recon: Tensor
    kl: Tensor
    surrogate: Tensor | None
    tc: Tensor | None
    mmd: Tensor | None
    dip: CovarianceDistance | None
    factor: DiscriminatorTerms | None
    posterior: Distribution


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
    the closed-form KL; each model of a pack may have its own ``lambda``. ``tc_weight: w != 1`` trains the KL
    as ``KL + (w - 1) TC``, the aggregate posterior's total correlation weighed ``w`` (Chen et al. 2018's beta-TCVAE;
    ``TC`` estimated on the batch, ``vae_zoo.objectives.total_correlation``, reported as ``tc``): with a
    reparameterized sample and a posterior of independent units; each model of a pack may have its own ``w``.
    ``mmd_weight: lambda > 0`` adds ``lambda MMD^2(q(z), p(z))``, the maximum mean discrepancy between the
    aggregate posterior and the prior (InfoVAE, Zhao et al. 2019, whose ``alpha`` is ``1 - beta``; with ``beta = 0``
    the MMD-VAE), estimated from the batch's samples and as many prior draws with a Gaussian kernel of bandwidth
    ``mmd_bandwidth`` (``vae_zoo.objectives.maximum_mean_discrepancy``, reported as ``mmd``): with a
    reparameterized sample; each model of a pack may have its own ``lambda``. ``capacity_weight: gamma > 0`` trains
    the KL towards a target of ``capacity`` nats instead, as ``beta * gamma * |mean_x KL - C|`` over each model's
    batch (Burgess et al. 2018's capacity-controlled beta-VAE; ``callbacks.capacity`` raises ``C`` from 0): with
    the closed-form KL; each model of a pack may have its own ``C``. ``dip_weight: lambda_od > 0`` adds
    ``lambda_od sum_{i != j} Cov_ij^2 + lambda_d sum_i (Cov_ii - 1)^2`` for the batch covariance of the posterior
    means (``dip_covariance: means``, DIP-VAE-I) or of the aggregate posterior (``aggregate``, DIP-VAE-II; Kumar et
    al. 2018, ``vae_zoo.objectives.disentangled_covariance``), ``lambda_d`` the ``dip_diagonal_weight`` (unset:
    ``10 lambda_od`` for the means, ``lambda_od`` for the aggregate, the paper's), reported as ``dip_off_diagonal``
    and ``dip_diagonal``: with a diagonal Normal posterior; each model of a pack may have its own two weights. A model
    with a discriminator (``discriminator=mlp``) trains it to estimate the aggregate posterior's total correlation
    from the training samples, reported as ``factor_tc`` (and its loss as ``discriminator``; added to the loss with
    a value of 0, so the loss keeps the objective's value), and ``factor_weight: gamma > 0`` adds ``gamma`` times that
    estimate at each sample to the loss (Kim & Mnih 2018's FactorVAE, ``vae_zoo.objectives.factor_discriminator``):
    with a reparameterized sample; each model of a pack may have its own ``gamma``.
    """

    per_model_settings = (
        "free_bits",
        "tc_weight",
        "mmd_weight",
        "dip_weight",
        "dip_diagonal_weight",
        "factor_weight",
    )
    trains_discriminator = True

    def __init__(
        self,
        beta: float = 1.0,
        kl: str = "auto",
        gradient: str = "total",
        free_bits: float = 0.0,
        tc_weight: float = 1.0,
        mmd_weight: float = 0.0,
        mmd_bandwidth: float = 1.0,
        capacity_weight: float = 0.0,
        capacity: float = 0.0,
        dip_weight: float = 0.0,
        dip_diagonal_weight: float | None = None,
        dip_covariance: str = "means",
        factor_weight: float = 0.0,
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
        if not tc_weight >= 0:
            raise ConfigError(
                f"objective.tc_weight={tc_weight} must be >= 0 (the total correlation's weight in the KL; 1: the ELBO)"
            )
        self.tc_weight = float(tc_weight)
        if not mmd_weight >= 0 or not mmd_bandwidth > 0:
            raise ConfigError(
                f"objective.mmd_weight={mmd_weight} must be >= 0 (0: off) and objective.mmd_bandwidth={mmd_bandwidth} "
                "> 0"
            )
        self.mmd_weight, self.mmd_bandwidth = float(mmd_weight), float(mmd_bandwidth)
        if not factor_weight >= 0:
            raise ConfigError(
                f"objective.factor_weight={factor_weight} must be >= 0 (the discriminator's total correlation's "
                "weight in the loss; 0: off)"
            )
        self.factor_weight = float(factor_weight)
        self._set_dip(dip_weight, dip_diagonal_weight, dip_covariance)
        if self.gradient == "dreg" and self.sample_settings:
            raise ConfigError(
                f"{self.sample_settings} and objective.gradient=dreg do not combine: the doubly reparameterized "
                "gradient is derived for the ELBO's own terms, not this one's -- set objective.gradient=total, or "
                f"{self.plain_settings}"
            )
        if not capacity_weight >= 0 or not capacity >= 0:
            raise ConfigError(
                f"objective.capacity_weight={capacity_weight} and objective.capacity={capacity} must be >= 0 (the "
                "weight of |KL - capacity| in the loss, 0: off; the target KL in nats)"
            )
        self.capacity_weight, self.capacity = float(capacity_weight), float(capacity)
        if self.capacity_weight:
            self._check_capacity_alone(kl)
        self.needs_exact_samples = kl == "mc"

    def _set_dip(self, weight: float, diagonal_weight: float | None, covariance: str) -> None:
        """DIP-VAE's weights and covariance, refused in one line where out of range."""
        if covariance not in DIP_COVARIANCES:
            raise ConfigError(
                f"objective.dip_covariance={covariance!r} is not one of {', '.join(DIP_COVARIANCES)} (means: "
                "DIP-VAE-I, aggregate: DIP-VAE-II)"
            )
        if not weight >= 0 or not (diagonal_weight is None or diagonal_weight >= 0):
            raise ConfigError(
                f"objective.dip_weight={weight} and objective.dip_diagonal_weight={diagonal_weight} must be >= 0 "
                "(the weights of the covariance's off-diagonal and diagonal distance from the identity; 0: off)"
            )
        self.dip_covariance, self.dip_weight = covariance, float(weight)
        paper = 10 * self.dip_weight if covariance == "means" else self.dip_weight
        self.dip_diagonal_weight = paper if diagonal_weight is None else float(diagonal_weight)

    def _check_capacity_alone(self, kl: str) -> None:
        """Refuse in one line a setting that trains the KL otherwise beside ``capacity_weight``."""
        others = {
            "objective.kl=mc": kl == "mc",
            "objective.gradient=dreg": self.gradient == "dreg",
            f"objective.free_bits={self.free_bits}": self.free_bits,
            f"objective.tc_weight={self.tc_weight}": self.weighs_tc,
            f"objective.mmd_weight={self.mmd_weight}": self.weighs_mmd,
            f"objective.dip_weight={self.dip_weight}": self.weighs_dip,
        }
        given = [setting for setting, on in others.items() if on]
        if given:
            raise ConfigError(
                f"objective.capacity_weight={self.capacity_weight} trains the closed-form KL towards a capacity, "
                f"and {given[0]} trains it otherwise -- set objective.capacity_weight=0, or drop that setting"
            )

    @property
    def weighs_tc(self) -> bool:
        """Whether a model trains with the total correlation weighed apart: ``tc_weight != 1``, or one weight per
        packed model (set where the models' weights differ, so one of them is not 1)."""
        return differs_from(self.tc_weight, 1)

    @property
    def weighs_mmd(self) -> bool:
        """Whether a model trains with the MMD: ``mmd_weight > 0``, or one weight per packed model."""
        return differs_from(self.mmd_weight, 0)

    @property
    def weighs_dip(self) -> bool:
        """Whether a model trains with DIP-VAE's penalty: ``dip_weight > 0``, or one weight per packed model."""
        return differs_from(self.dip_weight, 0)

    @property
    def weighs_factor(self) -> bool:
        """Whether a model trains with the discriminator's total correlation: ``factor_weight > 0``, or one weight
        per packed model."""
        return differs_from(self.factor_weight, 0)

    @property
    def sample_settings(self) -> str:
        """Those of the settings that add a term of the training samples to the ELBO's (``tc_weight``,
        ``mmd_weight``, ``factor_weight``) which are on, as a refusal names them; empty where none is."""
        on = [f"objective.tc_weight={self.tc_weight}"] if self.weighs_tc else []
        on += [f"objective.mmd_weight={self.mmd_weight}"] if self.weighs_mmd else []
        on += [f"objective.factor_weight={self.factor_weight}"] if self.weighs_factor else []
        return " ".join(on)

    @property
    def requires(self) -> Requirement:
        """With ``dip_weight``, a diagonal Normal posterior (its means and variances); with ``tc_weight``, a posterior of
        independent units (the total correlation's marginals)."""
        if self.weighs_dip:
            return DIAGONAL_NORMAL
        return INDEPENDENT_UNITS if self.weighs_tc else super().requires

    @property
    def needs_reparameterized_samples(self) -> bool:
        """With ``tc_weight`` or ``mmd_weight`` too: their estimates train through the samples."""
        return bool(self.sample_settings) or super().needs_reparameterized_samples

    @property
    def plain_settings(self) -> str:
        off = ["objective.tc_weight=1"] if self.weighs_tc else []
        off += ["objective.mmd_weight=0"] if self.weighs_mmd else []
        off += ["objective.dip_weight=0"] if self.weighs_dip else []
        off += ["objective.factor_weight=0"] if self.weighs_factor else []
        return " ".join(off) or super().plain_settings

    def bind(self, model: ForwardPath) -> None:
        if self.weighs_factor and model.discriminator is None:
            raise ConfigError(
                f"objective.factor_weight={self.factor_weight} weighs the total correlation a discriminator "
                "estimates, and this model has none -- add discriminator=mlp"
            )
        if self.kl == "analytic" and not model.closed_form_kl:
            raise ConfigError(
                "objective.kl=analytic needs a closed-form KL, which this model's prior, flow or latent layers "
                "lack -- set objective.kl=auto (or mc): the one-sample estimate at the training sample"
            )
        if self.capacity_weight and not model.closed_form_kl:
            raise ConfigError(
                f"objective.capacity_weight={self.capacity_weight} trains the closed-form KL, which this model's "
                "prior, flow or latent layers lack -- set objective.capacity_weight=0"
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
        settings += f", free_bits={self.free_bits}" if self.frees_bits else ""
        settings += f", tc_weight={self.tc_weight}" if self.weighs_tc else ""
        settings += f", capacity_weight={self.capacity_weight}" if self.capacity_weight else ""
        if self.weighs_dip:
            settings += f", dip_weight={self.dip_weight}, dip_covariance={self.dip_covariance}"
        settings += f", factor_weight={self.factor_weight}" if self.weighs_factor else ""
        return settings + (f", mmd_weight={self.mmd_weight}" if self.weighs_mmd else "")

    @property
    def frees_bits(self) -> bool:
        """Whether a model trains with free bits: ``free_bits > 0``, or one value per packed model (set where the
        models' values differ, so one of them is > 0)."""
        return differs_from(self.free_bits, 0)

    def forward(self, model: ForwardPath, x: Tensor) -> ObjectiveOutput:
        recon, kl, surrogate, tc, mmd, dip, factor, q = self.terms_per_image(
            model, x, per_unit=self.frees_bits
        )
        trained_kl = kl
        if self.frees_bits:
            trained_kl, kl = self.free_bits_kl(model, kl), kl.sum(-1)
        if tc is not None:
            trained_kl = trained_kl + (per_image(self.tc_weight, len(tc)) - 1) * tc
        if self.capacity_weight:
            loss = model.batch_mean(recon) + self.capacity_term(model.batch_mean(kl))
        else:
            loss = model.batch_mean(recon + self.weighted_kl(trained_kl))
        own_term, own_terms = own_loss_term(model, q)
        loss = loss + estimator_term(surrogate, model.batch_mean) + own_term
        recon, kl = model.batch_mean(recon).detach(), model.batch_mean(kl).detach()
        terms = {"elbo": recon + kl, "recon": recon, "kl": kl, **own_terms}
        if tc is not None:
            terms["tc"] = model.batch_mean(tc).detach()
        if mmd is not None:
            loss = loss + self.mmd_weight * mmd
            terms["mmd"] = mmd.detach()
        if dip is not None:
            loss = loss + self.dip_weight * dip.off_diagonal + self.dip_diagonal_weight * dip.diagonal
            terms["dip_off_diagonal"], terms["dip_diagonal"] = (
                dip.off_diagonal.detach(),
                dip.diagonal.detach(),
            )
        if factor is not None:
            if self.weighs_factor:
                loss = loss + model.batch_mean(per_image(self.factor_weight, len(factor.tc)) * factor.tc)
            discriminator = model.batch_mean(factor.loss)
            loss = loss + (discriminator - discriminator.detach())
            terms["factor_tc"] = model.batch_mean(factor.tc).detach()
            terms["discriminator"] = discriminator.detach()
        return ObjectiveOutput(loss, terms)

    def capacity_term(self, mean_kl: Tensor) -> Tensor:
        """``beta * gamma * |mean KL - C|`` from each model's batch-mean KL (a scalar, or ``(N,)`` packed), ``beta``
        and ``C`` a number or one per packed model."""
        return self.beta * self.capacity_weight * (mean_kl - self.capacity).abs()

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

    def terms_per_image(self, model: ForwardPath, x: Tensor, per_unit: bool = False) -> SampleTerms:
        """``-log p(x|z)`` and the KL (closed form, or the estimate at ``z``) per image at the estimator's
        training sample ``z`` (``per_unit``: the closed form per image and latent unit), the estimator's
        surrogate for the cost (None for pathwise estimators), the total correlation's estimate per image at ``z``
        (None unless ``tc_weight`` weighs it), and the MMD's per model (None unless ``mmd_weight``)."""
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
        tc = self.total_correlation(model, q, z) if self.weighs_tc else None
        mmd = self.maximum_mean_discrepancy(model, z) if self.weighs_mmd else None
        dip = self.covariance_distance(model, q) if self.weighs_dip else None
        surrogate = model.surrogate(q, draw, cost)
        factor = None
        if model.discriminator is not None:  # its permutation draws after all the VAE's own draws
            factor = discriminator_terms(
                model.discriminator, z if self.weighs_factor else z.detach(), model.models
            )
        return SampleTerms(recon, kl, surrogate, tc, mmd, dip, factor, q)

    def covariance_distance(self, model: ForwardPath, q: Distribution) -> CovarianceDistance:
        """How far each packed model's covariance of its codes (``dip_covariance``) is from the identity."""
        with model.autocast_off():
            normal = q.base_dist
            covariance = code_covariance(
                normal.loc, normal.scale.square(), model.models, self.dip_covariance == "aggregate"
            )
            return distance_from_identity(covariance)

    def maximum_mean_discrepancy(self, model: ForwardPath, z: Tensor) -> Tensor:
        """``MMD^2`` between the samples ``z`` and as many draws of the prior (each packed model's own)."""
        with model.autocast_off():
            p = model.prior_distribution()
            shape = () if p.batch_shape else (len(z),)  # a prior per image (packed, or given a class), or one
            y = p.rsample(shape) if p.has_rsample else p.sample(shape)
        return mmd_squared(z, y, model.models, self.mmd_bandwidth)

    def total_correlation(self, model: ForwardPath, q: Distribution, z: Tensor) -> Tensor:
        """``TC_i`` per image at the samples ``z`` of posterior ``q``, each packed model's from its own images."""
        if self.training_images is None:
            raise ConfigError(
                "objective.tc_weight estimates the aggregate posterior over the training set, whose size training "
                "sets at its start -- outside training set the objective's training_images to it"
            )
        return total_correlation(
            lambda values: model.unit_log_probs(q, values), z, model.models, self.training_images
        )
