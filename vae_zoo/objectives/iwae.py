"""The importance-weighted bound as the training objective (Burda, Grosse & Salakhutdinov 2016)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from vae_zoo.capabilities import FIXED_PARAMETERS, Requirement
from vae_zoo.errors import ConfigError
from vae_zoo.estimators.estimator import Cost
from vae_zoo.objectives.doubly_reparameterized import (
    checked_gradient,
    parameters_stopped,
    reweight_sample_gradient,
)
from vae_zoo.objectives.objective import Objective, ObjectiveOutput, estimator_term, own_loss_term
from vae_zoo.objectives.partitioned import partitioned_loss
from vae_zoo.packed_batch import differs_from, per_image

if TYPE_CHECKING:
    from vae_zoo.forward_path import ForwardPath


def negative_log_mean_exp(log_w: Tensor) -> Tensor:
    """``-log (1/k) sum_i exp(log_w_i)`` over the k samples of ``log_w`` shaped ``(..., k, B)`` (any leading
    dims: an estimator's independent draws of k samples each)."""
    return math.log(log_w.shape[-2]) - torch.logsumexp(log_w, dim=-2)


@torch.no_grad()
def importance_weighted_nll(model: ForwardPath, x: Tensor, k: int, chunk: int) -> Tensor:
    """``-log (1/k) sum_i w_i`` per image, ``log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x)``, ``z_i`` exact
    samples of ``q(z|x)`` (Burda et al. 2016; ``test/nll_iw``).

    Drawn ``chunk`` at a time and folded in with ``logaddexp``, so memory does not grow with ``k``; with
    ``k = 1`` this is a one-sample negative ELBO estimate.
    """
    q, p = model.posterior(x), model.prior_distribution()
    log_sum = None
    for start in range(0, k, chunk):
        with model.autocast_off():
            z = q.sample((min(chunk, k - start),))
        chunk_sum = torch.logsumexp(model.log_weights(x, q, z, p), dim=0)
        log_sum = chunk_sum if log_sum is None else torch.logaddexp(log_sum, chunk_sum)
    return math.log(k) - log_sum


class IWAE(Objective):
    """Minimises ``-L_k = -log (1/k) sum_i w_i``, ``log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x)``,
    with ``z_1..z_k`` drawn by the estimator for each image (``sample_shape = (k,)``).

    ``L_k`` is computed with ``logsumexp``; its pathwise gradient is ``sum_i w~_i grad log w_i`` with the
    normalized weights ``w~_i = w_i / sum_j w_j`` entering as constants, which autograd of
    ``logsumexp`` gives by itself (a test checks it against that formula). With k = 1 this is the ELBO
    with a one-sample KL. ``L_k`` increases with k towards ``log p(x)``. Terms: ``iwae_<k>`` (``-L_k``) and
    ``elbo`` (the mean of ``-log w_i``, a k-sample negative ELBO estimate). Evaluation reports
    ``val/iwae_<k>`` with exact samples beside ``val/elbo``. ``gradient: dreg`` trains the encoder by the
    doubly reparameterized gradient ``sum_i w~_i^2 d log w_i/dz_i dz_i/dphi`` instead
    (``vae_zoo.objectives.doubly_reparameterized``; the same loss value and decoder gradient).

    ``groups: M > 1`` minimises ``-(1/M) sum_m L_k^(m)`` over ``M`` independent groups of ``k`` samples each
    (``sample_shape = (M, k)``): Rainforth et al. 2018's MIWAE, whose expected value is ``L_k``'s, so that its
    gradient is unbiased for ``L_k``'s with ``1/M`` of one group's variance. For the same ``M k`` decoder passes
    as IWAE with ``M k`` samples it trains a looser bound whose encoder gradient has the larger signal-to-noise
    ratio. With a reparameterized sample (the groups' estimates are averaged through the sample); with ``dreg``,
    each group's own weights. Its terms and evaluation bound are ``iwae_<k>``'s.

    ``elbo_weight: beta > 0`` trains each group's ``(1 - beta) L_k + beta (1/k) sum_i log w_i``, the bound mixed
    with the k-sample ELBO (Rainforth et al.'s CIWAE; each model of a pack may have its own ``beta``).
    ``partitioned: true`` (with groups) trains the generative model on the one bound of all ``M k`` samples,
    ``L_Mk``, and the encoder on the groups' mean (Rainforth et al.'s PIWAE;
    ``vae_zoo.objectives.partitioned``); its loss's value is ``-L_Mk``, also the term ``iwae_<Mk>``.
    """

    needs_exact_samples = True
    per_model_settings = ("elbo_weight",)

    def __init__(
        self,
        k: int = 5,
        gradient: str = "total",
        groups: int = 1,
        elbo_weight: float = 0.0,
        partitioned: bool = False,
    ) -> None:
        super().__init__()
        if k < 1 or groups < 1:
            raise ConfigError(f"objective.k={k} and objective.groups={groups} must be >= 1")
        if not 0 <= elbo_weight <= 1:
            raise ConfigError(
                f"objective.elbo_weight={elbo_weight} must be in [0, 1] (the ELBO's share in each group's bound; "
                "0: the IWAE bound)"
            )
        self.k = self.samples_per_image = k
        self.groups = groups
        self.bound_name = f"iwae_{k}"
        self.gradient = checked_gradient(gradient)
        self.elbo_weight = float(elbo_weight)
        self.partitioned = partitioned
        if partitioned and groups == 1:
            raise ConfigError(
                "objective.partitioned=true trains the encoder on the mean of objective.groups bounds and the "
                "decoder on their pooled samples, and there is one group -- set objective.groups > 1"
            )
        if self.elbo_weight and self.gradient == "dreg" and not partitioned:
            raise ConfigError(
                f"objective.elbo_weight={elbo_weight} and objective.gradient=dreg do not combine (the doubly "
                "reparameterized gradient reweights the IWAE bound's samples) -- set objective.elbo_weight=0, "
                "or objective.gradient=total"
            )

    @property
    def weighs_elbo(self) -> bool:
        """Whether a model mixes the ELBO in (``elbo_weight > 0``, or one weight per packed model)."""
        return differs_from(self.elbo_weight, 0)

    @property
    def requires(self) -> Requirement:
        """With ``partitioned`` too: the generative model's bound holds q's parameters fixed."""
        return FIXED_PARAMETERS if self.partitioned else super().requires

    @property
    def needs_reparameterized_samples(self) -> bool:
        """With ``groups > 1`` or ``elbo_weight`` too: the groups' or the mixed bounds are averaged through the
        sample."""
        return self.groups > 1 or self.weighs_elbo or super().needs_reparameterized_samples

    @property
    def plain_settings(self) -> str:
        settings = ["objective.gradient=total"] if self.gradient == "dreg" else []
        settings += ["objective.partitioned=false"] if self.partitioned else []
        settings += ["objective.groups=1"] if self.groups > 1 else []
        settings += ["objective.elbo_weight=0"] if self.weighs_elbo else []
        return " ".join(settings) or super().plain_settings

    def extra_repr(self) -> str:
        settings = f"k={self.k}" + (f", groups={self.groups}" if self.groups > 1 else "")
        settings += f", elbo_weight={self.elbo_weight}" if self.weighs_elbo else ""
        settings += ", partitioned" if self.partitioned else ""
        return settings + (", gradient=dreg" if self.gradient == "dreg" else "")

    def negative_bound(self, log_w: Tensor) -> Tensor:
        """``-L_k`` of the samples of ``log_w`` (``(..., k, B)``), or with ``elbo_weight`` the mix
        ``-(1 - beta) L_k - beta (1/k) sum_i log w_i``."""
        negative_bound = negative_log_mean_exp(log_w)
        if not self.weighs_elbo:
            return negative_bound
        beta = per_image(self.elbo_weight, log_w.shape[-1])
        return (1 - beta) * negative_bound - beta * log_w.mean(-2)

    def forward(self, model: ForwardPath, x: Tensor) -> ObjectiveOutput:
        q = model.posterior(x)
        draw = model.training_sample(q, (self.k,) if self.groups == 1 else (self.groups, self.k))
        z = draw.value
        own_term, own_terms = own_loss_term(model, q)
        if self.partitioned:
            loss, log_w = partitioned_loss(self, model, x, q, z)
            terms = self.terms(model, log_w)
            pooled = negative_log_mean_exp(log_w.detach().flatten(0, 1))
            terms[f"iwae_{self.groups * self.k}"] = model.batch_mean(pooled)
            return ObjectiveOutput(loss + own_term, terms | own_terms)
        if self.gradient == "total":
            log_w = model.log_weights(x, q, z)
        else:
            log_w = model.log_weights(x, parameters_stopped(q), z)
            reweight_sample_gradient(z, log_w)
        negative_bound = self.negative_bound(log_w)
        cost = Cost(negative_bound, lambda z: self.negative_bound(model.log_weights(x, q, z)), x, log_w)
        loss = model.batch_mean(negative_bound) + estimator_term(
            model.surrogate(q, draw, cost), model.batch_mean
        )
        return ObjectiveOutput(loss + own_term, self.terms(model, log_w) | own_terms)

    def terms(self, model: ForwardPath, log_w: Tensor) -> dict[str, Tensor]:
        """``iwae_<k>``, the groups' mean ``-L_k``, and ``elbo``, the mean ``-log w``."""
        log_w = log_w.detach()
        return {
            self.bound_name: model.batch_mean(negative_log_mean_exp(log_w)),
            "elbo": -model.batch_mean(log_w),
        }

    def bound(self, model: ForwardPath, x: Tensor) -> Tensor:
        return model.importance_weighted_nll(x, self.k)
