"""The doubly reparameterized gradient (Tucker, Lawson, Gu & Maddison 2019) and, its one-sample case, sticking
the landing (Roeder, Wu & Duvenaud 2017).

With ``z_i = z(eps_i, phi)`` reparameterized and ``w~_i = w_i / sum_j w_j``, the encoder's gradient of the
importance-weighted bound ``L_k`` is ``sum_i w~_i (d log w_i/dz_i  dz_i/dphi - d log q_phi(z_i)/dphi)``. Its score
term has expectation ``-sum_i (w~_i - w~_i^2) d log w_i/dz_i dz_i/dphi`` (the reparameterization identity applied
to ``w~_i``), so

    grad_phi L_k  =  E[ sum_i w~_i^2  d log w_i/dz_i  dz_i/dphi ]          (DReG)

without the score term, whose variance grows as the posterior tightens and drives the IWAE encoder's
signal-to-noise ratio to 0 as k grows (Rainforth et al. 2018). Computed as: ``log w_i`` with ``q``'s parameters
held fixed (``parameters_stopped``: no score term), and the gradient reaching each ``z_i`` multiplied by ``w~_i``
(``reweight_sample_gradient``), so that the decoder and the prior keep their gradient ``sum_i w~_i grad log w_i``
and the path through ``z_i`` gets ``w~_i^2``. The loss's value is unchanged. With one sample (``w~ = 1``) it is the
ELBO's gradient without the score term of its one-sample ``log q(z)``: sticking the landing, zero for every
sample where ``q`` is the exact posterior.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor
from torch.distributions import Distribution

from vae_zoo.errors import ConfigError

#: ``objective.gradient``: the objective's own gradient, or the doubly reparameterized one
GRADIENTS = ("total", "dreg")


def checked_gradient(gradient: str) -> str:
    """``objective.gradient``, refused in one line unless one of ``GRADIENTS``."""
    if gradient not in GRADIENTS:
        raise ConfigError(
            f"objective.gradient={gradient!r} is not one of {', '.join(GRADIENTS)} (dreg: the doubly "
            "reparameterized gradient, for reparameterized samples)"
        )
    return gradient


def parameters_stopped(q: Distribution) -> Distribution:
    """``q`` with its parameters held fixed: a shallow copy whose tensors (and those of its inner distributions)
    are detached, so that its ``log_prob`` passes gradient to the point only (as Pyro's ``util.detach``). For
    distributions that hold their parameters as tensors (``capabilities.FIXED_PARAMETERS``)."""
    stopped = copy.copy(q)
    for name, value in vars(q).items():
        if isinstance(value, Tensor):
            vars(stopped)[name] = value.detach()
        elif isinstance(value, Distribution):
            vars(stopped)[name] = parameters_stopped(value)
    return stopped


def reweight_sample_gradient(z: Tensor, log_w: Tensor) -> None:
    """In the backward pass, multiply the gradient reaching each sample ``z_i`` by its normalized weight
    ``w~_i = softmax(log w)_i`` over the k samples (``log_w`` shaped ``(..., k, B)``, ``z`` that plus event
    dims); nothing where ``z`` carries no gradient (evaluation)."""
    if not z.requires_grad:
        return
    weights = torch.softmax(log_w.detach(), dim=-2)
    weights = weights.reshape(weights.shape + (1,) * (z.dim() - weights.dim()))
    z.register_hook(lambda grad: grad * weights)
