"""VIMCO: the multi-sample bound's score function with per-sample leave-one-out baselines (Mnih & Rezende 2016)."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Distribution

from vae_zoo.capabilities import SCORE
from vae_zoo.estimators.estimator import Cost, Draw, Estimator


class VIMCO(Estimator):
    """For the k-sample bound ``L = log (1/k) sum_i w_i`` (``objective=iwae``, k >= 2): each sample's
    learning signal is ``L - L_{-j}``, with ``L_{-j}`` the bound with ``log w_j`` replaced by the mean of the
    others' ``log w_i`` (their geometric mean in place of ``w_j``), which does not depend on ``z_j``. The
    score part ``sum_j (L - L_{-j}) grad log q(z_j)`` is this surrogate; the part through ``log w_j``'s own
    dependence on q (``sum_j w~_j grad log w_j``) is the objective's autograd. Reads the objective's
    per-sample ``log w`` (``Cost.log_weights``)."""

    requires = SCORE
    min_objective_samples = 2

    def sample(self, q: Distribution, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        return q.sample(sample_shape)

    def surrogate(self, q: Distribution, draw: Draw, cost: Cost) -> Tensor:
        log_w = cost.log_weights.detach()  # (..., k, B)
        k = log_w.shape[-2]
        bound = torch.logsumexp(log_w, dim=-2) - math.log(k)
        others = (log_w.sum(-2, keepdim=True) - log_w) / (k - 1)  # (..., k, B): mean of the others' log w
        eye = torch.eye(k, dtype=torch.bool, device=log_w.device).unsqueeze(-1)  # (k, k, 1): row j, column i
        replaced = torch.where(eye, others.unsqueeze(-2), log_w.unsqueeze(-3))  # row j: log w with j replaced
        loo = torch.logsumexp(replaced, dim=-2) - math.log(k)  # (..., k, B): L_{-j}
        signal = loo - bound.unsqueeze(-2)  # minimising -L: d(-L) = -(L - L_{-j}) grad log q(z_j)
        return (signal * q.log_prob(draw.value)).sum(-2)
