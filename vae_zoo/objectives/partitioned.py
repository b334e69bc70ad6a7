"""PIWAE (Rainforth, Kosiorek, Le, Maddison, Igl, Wood & Teh 2018): one set of ``M k`` samples per image trains
the generative model on the tight bound of them all and the encoder on the looser mean of ``M`` groups' bounds,
whose gradient has the larger signal-to-noise ratio.

With ``log w_{m,i} = log p(x|z_{m,i}) + log p(z_{m,i}) - log q_phi(z_{m,i}|x)`` and ``z = z(eps, phi)``:

    grad_theta  = grad_theta L_Mk(log w)                          (the generative model: decoder, likelihood, prior)
    grad_phi    = (1/M) sum_m sum_i c_{m,i} (d log w_{m,i}/dz dz_{m,i}/dphi - d log q_phi(z_{m,i})/dphi)

where ``c_{m,i} = d L_k^(m) / d log w_{m,i} = w~_{m,i}``, the weights normalized within group ``m`` (with
``elbo_weight`` beta: ``(1 - beta) w~_{m,i} + beta / k``; with ``dreg`` the path term's coefficient is ``w~^2``,
and there is no score term). Computed from one decoder pass: ``log w`` at the samples held fixed and q's
parameters held fixed gives the generative model its bound (whatever reaches the parameters through
``log p(x, z)``, a VampPrior's encoder included); its derivative in each sample, ``d log w/dz`` (one backward
through the decoder to the samples alone), enters the encoder's surrogate
``sum_{m,i} c (<d log w/dz, z> - log q_phi(z held fixed))``, whose value is subtracted again so that the loss's
value is the generative model's, ``-L_Mk`` (with ``elbo_weight``, mixed with the ELBO as each group's is).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torch.distributions import Distribution

from vae_zoo.objectives.doubly_reparameterized import parameters_stopped
from vae_zoo.packed_batch import per_image

if TYPE_CHECKING:
    from vae_zoo.forward_path import ForwardPath
    from vae_zoo.objectives.iwae import IWAE


def encoder_coefficients(
    log_w: Tensor, elbo_weight: Tensor | float, squared: bool
) -> tuple[Tensor, Tensor | None]:
    """The coefficients of each sample's path and score terms in its group's bound, ``(M, k, B)`` each:
    ``(1 - beta) w~ + beta / k`` for both, or with ``squared`` (DReG) ``(1 - beta) w~^2 + beta / k`` for the path
    and no score term (None)."""
    weights = torch.softmax(log_w.detach(), dim=-2)
    beta, k = per_image(elbo_weight, log_w.shape[-1]), log_w.shape[-2]
    if squared:
        return (1 - beta) * weights.square() + beta / k, None
    score = (1 - beta) * weights + beta / k
    return score, score


def encoder_surrogate(
    model: ForwardPath, q: Distribution, z: Tensor, slopes: Tensor, coefficients: tuple[Tensor, Tensor | None]
) -> Tensor:
    """Per group and image, ``-sum_i (c_path <d log w/dz, z> - c_score log q_phi(z held fixed))``: its gradient
    in the encoder's parameters is the negative groups' bound's, nothing else's."""
    path, score = coefficients
    terms = path * (slopes * z).reshape(*path.shape, -1).sum(-1)
    if score is not None:
        with model.autocast_off():
            terms = terms - score * q.log_prob(z.detach())
    return -terms.sum(-2)


def partitioned_loss(
    objective: IWAE, model: ForwardPath, x: Tensor, q: Distribution, z: Tensor
) -> tuple[Tensor, Tensor]:
    """The PIWAE loss on ``x`` for samples ``z`` of ``q`` shaped ``(M, k, B, ...)``, its value the generative
    model's bound of all ``M k`` samples, and the samples' ``log w``."""
    training = z.requires_grad
    fixed = z.detach().requires_grad_(training)
    # (M, k, B), with q's parameters and the samples held fixed: it trains the generative model alone
    log_w = model.log_weights(x, parameters_stopped(q), fixed)
    loss = model.batch_mean(objective.negative_bound(log_w.flatten(0, 1)))
    if training:
        (slopes,) = torch.autograd.grad(log_w.sum(), fixed, retain_graph=True)
        coefficients = encoder_coefficients(log_w, objective.elbo_weight, objective.gradient == "dreg")
        surrogate = model.batch_mean(encoder_surrogate(model, q, z, slopes, coefficients))
        loss = loss + (surrogate - surrogate.detach())
    return loss, log_w
