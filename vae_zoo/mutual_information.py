"""The mutual information between an image and its code, and the aggregate posterior's KL from the prior: the
ELBO's KL taken apart (Hoffman & Johnson 2016, "ELBO surgery").

Over the ``N`` test images, with ``q(z) = (1/N) sum_j q(z|x_j)`` the aggregate posterior, the ELBO's mean KL is

    E_x KL(q(z|x) || p(z))  =  I_q(x; z)  +  KL(q(z) || p(z)),    I_q(x; z) = E_x E_q(z|x)[log q(z|x) - log q(z)],

the information the code carries about the image, ``0 <= I_q <= log N``, plus how far the codes' overall
distribution is from the prior. A collapsed posterior (``q(z|x) = p(z)``) has both 0; an encoder that uses its
code and covers the prior has a large ``I_q`` and a small marginal KL. With one exact sample ``z_i`` of each
image's posterior (the one the test's ELBO used),

    I^ = (1/N) sum_i [log q(z_i|x_i) - log (1/N) sum_j q(z_i|x_j)],

which is unbiased: the aggregate is the finite mixture of every test image's posterior, evaluated exactly (``N^2``
densities, in chunks), where He et al. 2019 take a batch's (an estimate capped at the log of the batch size).
``KL(q(z) || p(z))`` is the mean KL less ``I^``. Each packed model (``vae_zoo.packing``) has its own, over its own
images. With a prior of the label, ``p(z|y)``, the mean KL does not split so, and only ``I_q((x, y); z)`` is
reported. Densities at other images' samples need the posterior's parameters as tensors
(``capabilities.FIXED_PARAMETERS``): a flow's posterior and a two-layer chain's have none, and get neither number.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import (
    Bernoulli,
    Beta,
    Dirichlet,
    Distribution,
    Gamma,
    Independent,
    Normal,
    OneHotCategorical,
    VonMises,
)

from vae_zoo.capabilities import is_point_mass
from vae_zoo.latents.von_mises_fisher_distribution import VonMisesFisher, log_normalizer

#: the most elements one evaluation of pairwise densities holds (samples x posteriors x event): 2^22 floats
PAIR_ELEMENTS = 2**22


class LinearForm(NamedTuple):
    """``log q(z | x_j) = T(z) . eta_j + c_j``: a posterior whose log-density is linear in a statistic of ``z``, in
    float64 (``eta`` ``(B, S)``, ``c`` ``(B,)``), so that its pairwise densities are one matrix product."""

    statistic: Callable[[Tensor], Tensor]
    eta: Tensor
    c: Tensor


def linear_form(q: Distribution) -> LinearForm | None:
    """``q``'s ``LinearForm`` where it has one of one vector (or matrix of simplex rows) per image; else None.
    Sums over the units ``d``:

    - diagonal Normal: ``T = (z^2, z)``, ``eta = (-1/(2 sigma^2), mu/sigma^2)``,
      ``c = -sum_d [mu_d^2/(2 sigma_d^2) + log sigma_d] - D/2 log 2 pi``;
    - Bernoulli units with logits ``l``: ``T = z``, ``eta = l``, ``c = -sum_d softplus(l_d)``;
    - one-hot categorical units: ``T = z`` flattened, ``eta = log pi`` flattened, ``c = 0``;
    - Gamma(alpha, beta): ``T = (log z, z)``, ``eta = (alpha - 1, -beta)``, ``c = sum_d [alpha log beta - ln Gamma(alpha)]``;
    - Beta(a, b): ``T = (log z, log(1 - z))``, ``eta = (a - 1, b - 1)``, ``c = -sum_d ln B(a, b)``;
    - von Mises(mu, kappa): ``T = (cos z, sin z)``, ``eta = kappa (cos mu, sin mu)``,
      ``c = -sum_d [log 2 pi + log I_0(kappa)]``;
    - Dirichlet rows: ``T = log z`` flattened, ``eta = alpha - 1`` flattened,
      ``c = sum_n [ln Gamma(sum_k alpha_nk) - sum_k ln Gamma(alpha_nk)]``;
    - von Mises-Fisher (not over units): ``T = z``, ``eta = kappa mu``, ``c = log C_m(kappa)``."""
    if isinstance(q, VonMisesFisher) and q.loc.dim() == 2:
        kappa = q.concentration.double()
        return LinearForm(lambda z: z, kappa.unsqueeze(-1) * q.loc.double(), log_normalizer(q.m, kappa))
    if not isinstance(q, Independent) or q.reinterpreted_batch_ndims != 1:
        return None
    base = q.base_dist
    if isinstance(base, Normal) and base.loc.dim() == 2:
        loc, scale = base.loc.double(), base.scale.double()
        precision = scale.square().reciprocal()
        c = -(loc.square() * precision / 2 + scale.log()).sum(-1) - loc.shape[-1] / 2 * math.log(2 * math.pi)
        return LinearForm(
            lambda z: torch.cat([z.square(), z], -1), torch.cat([-precision / 2, loc * precision], -1), c
        )
    if isinstance(base, Bernoulli) and base.logits.dim() == 2:
        logits = base.logits.double()
        return LinearForm(lambda z: z, logits, -F.softplus(logits).sum(-1))
    if isinstance(base, OneHotCategorical) and base.logits.dim() == 3:
        log_probs = base.logits.double().flatten(1)
        return LinearForm(lambda z: z.flatten(-2), log_probs, log_probs.new_zeros(len(log_probs)))
    if isinstance(base, Gamma) and base.concentration.dim() == 2:
        shape, rate = base.concentration.double(), base.rate.double()
        return LinearForm(
            lambda z: torch.cat([z.log(), z], -1),
            torch.cat([shape - 1, -rate], -1),
            (shape * rate.log() - shape.lgamma()).sum(-1),
        )
    if isinstance(base, Beta) and base.concentration1.dim() == 2:
        a, b = base.concentration1.double(), base.concentration0.double()
        return LinearForm(
            lambda z: torch.cat([z.log(), (-z).log1p()], -1),
            torch.cat([a - 1, b - 1], -1),
            ((a + b).lgamma() - a.lgamma() - b.lgamma()).sum(-1),
        )
    if isinstance(base, VonMises) and base.loc.dim() == 2:
        loc, kappa = base.loc.double(), base.concentration.double()
        log_bessel = kappa + torch.special.i0e(kappa).log()  # log I_0(kappa), without overflow
        return LinearForm(
            lambda z: torch.cat([z.cos(), z.sin()], -1),
            torch.cat([kappa * loc.cos(), kappa * loc.sin()], -1),
            -(log_bessel + math.log(2 * math.pi)).sum(-1),
        )
    if isinstance(base, Dirichlet) and base.concentration.dim() == 3:
        alpha = base.concentration.double()
        return LinearForm(
            lambda z: z.log().flatten(-2),
            (alpha - 1).flatten(1),
            (alpha.sum(-1).lgamma() - alpha.lgamma().sum(-1)).sum(-1),
        )
    return None


def point_mass_pairs(points: Tensor, z: Tensor, models: int) -> Tensor:
    """``log q(z_mi | x_mj)`` of point masses at ``points`` ``(models * rows, *event)``: 0 where ``z_mi`` is image
    ``j``'s point, ``-inf`` elsewhere, ``(models, n, rows)`` in float64, found exactly by numbering the distinct
    rows of both (``torch.unique``) rather than by ``log_prob`` at every pair."""
    n = z.shape[1]
    rows = torch.cat([z.flatten(2), points.to(z.dtype).flatten(1).unflatten(0, (models, -1))], 1)
    ids = torch.unique(rows.flatten(0, 1), dim=0, return_inverse=True)[1].view(models, -1)
    same = ids[:, :n, None] == ids[:, None, n:]
    return torch.zeros(same.shape, dtype=torch.float64, device=z.device).masked_fill_(~same, -math.inf)


def pairwise_log_probs(q: Distribution, z: Tensor, models: int) -> Tensor:
    """``log q(z_mi | x_mj)`` in float64, ``(models, n, rows)``: samples ``z`` ``(models, n, *event)`` against the
    posteriors of a batch of ``models * rows`` images (each model's in turn), each model's samples against its own
    model's images. By one matrix product where ``q`` has a ``linear_form``, by comparing points for point masses
    (``point_mass_pairs``), for any other family by ``broadcast_log_probs``."""
    rows = q.batch_shape[0] // models
    if is_point_mass(q):
        return point_mass_pairs(q.mean, z, models)
    form = linear_form(q)
    if form is not None:
        eta, c = form.eta.unflatten(0, (models, rows)), form.c.unflatten(0, (models, rows))
        return form.statistic(z.double()) @ eta.mT + c.unsqueeze(1)
    return broadcast_log_probs(q, z, models)


def broadcast_log_probs(q: Distribution, z: Tensor, models: int) -> Tensor:
    """``pairwise_log_probs`` by ``q``'s ``log_prob`` broadcast over the pairs: any family's."""
    rows = q.batch_shape[0] // models
    event = z.shape[2:]
    values = (
        z.transpose(0, 1).unsqueeze(2).expand(-1, -1, rows, *event).flatten(1, 2)
    )  # (n, models * rows, *event)
    return q.log_prob(values).double().unflatten(1, (models, rows)).transpose(0, 1)


class AggregatePosterior:
    """The test images' posteriors, one exact sample of each and each image's KL, per model, gathered over a test
    epoch; ``estimates`` gives ``I^`` and the marginal KL, the densities of pairs by ``pairs`` (``pairwise_log_probs``;
    ``broadcast_log_probs``, any family's path, to compare against)."""

    def __init__(self, pairs: Callable[[Distribution, Tensor, int], Tensor] = pairwise_log_probs) -> None:
        self.pairs = pairs
        self.posteriors: list[Distribution] = []
        self.samples: list[Tensor] = []
        self.kls: list[Tensor] = []

    def add(self, q: Distribution, z: Tensor, kl: Tensor, models: int) -> None:
        """A batch: its posterior ``q`` (batch ``models * rows``), the sample ``z`` of each image and its KL."""
        self.posteriors.append(q)
        self.samples.append(z.detach().unflatten(0, (models, -1)))
        self.kls.append(kl.detach().double().unflatten(0, (models, -1)))

    def estimates(
        self, gather: Callable[[Tensor], Tensor] = lambda t: t.unsqueeze(0)
    ) -> tuple[list[float], list[float]]:
        """Per model, ``I^`` and the mean KL less ``I^`` over every process's images, ``gather`` stacking each
        process's tensor ``(models, n, ...)`` as ``(processes, models, n, ...)``."""
        models = self.samples[0].shape[0]
        gathered = gather(torch.cat(self.samples, 1))
        samples = gathered.transpose(0, 1).flatten(1, 2)  # (models, N, *event), every process's images
        images = samples.shape[1]
        partial = torch.logsumexp(gather(self._log_density_sums(samples)), 0)
        log_aggregate = partial - math.log(images)
        own = self._own_log_densities(gather, models)
        information = (own - log_aggregate).mean(1)
        kl = gather(torch.cat(self.kls, 1)).transpose(0, 1).flatten(1, 2).mean(1)
        return information.tolist(), (kl - information).tolist()

    def _log_density_sums(self, samples: Tensor) -> Tensor:
        """``log sum_j q(z_mi | x_mj)`` over this process's images ``j``, ``(models, N)``, for ``samples``."""
        models, images = samples.shape[:2]
        size, sums = self._chunk(samples), []
        for start in range(0, images, size):
            chunk = samples[:, start : start + size]
            per_batch = [torch.logsumexp(self.pairs(q, chunk, models), 2) for q in self.posteriors]
            sums.append(torch.logsumexp(torch.stack(per_batch), 0))
        return torch.cat(sums, 1)

    def _chunk(self, samples: Tensor) -> int:
        """Samples per evaluation, so that one against a batch of posteriors holds at most ``PAIR_ELEMENTS``: a
        sample's pairs with every image's event, or, for point masses, one number per pair and the sample's
        event once (``point_mass_pairs``)."""
        rows, event = max(z.shape[1] for z in self.samples), math.prod(samples.shape[2:])
        per_sample = rows + event if is_point_mass(self.posteriors[0]) else rows * event
        return max(1, PAIR_ELEMENTS // (samples.shape[0] * per_sample))

    def _own_log_densities(self, gather: Callable[[Tensor], Tensor], models: int) -> Tensor:
        """``log q(z_mi | x_mi)``, ``(models, N)``: the pairs' diagonal, in chunks (the same arithmetic as the
        aggregate's terms, so that identical posteriors give ``I^ = 0``)."""
        own = []
        for q, z in zip(self.posteriors, self.samples):
            size = self._chunk(z)
            for start in range(0, z.shape[1], size):
                pairs = self.pairs(q, z[:, start : start + size], models)
                own.append(pairs.diagonal(offset=start, dim1=1, dim2=2))
        return gather(torch.cat(own, 1)).transpose(0, 1).flatten(1, 2)


def surgery_metrics(
    aggregate: AggregatePosterior,
    prior_of_label: bool,
    gather: Callable[[Tensor], Tensor] = lambda t: t.unsqueeze(0),
) -> list[dict[str, float]]:
    """Per model, ``test/mutual_info`` and (unless the prior is ``p(z|y)``) ``test/marginal_kl`` from what
    ``aggregate`` gathered (``AggregatePosterior.estimates``); nothing where it gathered no posterior."""
    if not aggregate.posteriors:
        return []
    information, marginal = aggregate.estimates(gather)
    return [
        {"test/mutual_info": i, **({} if prior_of_label else {"test/marginal_kl": m})}
        for i, m in zip(information, marginal)
    ]
