"""DisARM: ARM Rao-Blackwellised over the antithetic pair's noise (Dong, Mnih & Tucker 2020)."""

from __future__ import annotations

import torch
from torch import Tensor

from vae_zoo.estimators.arm import ARM
from vae_zoo.estimators.estimator import Draw


class DisARM(ARM):
    """ARM's pair ``b``, ``b~``, with the per-logit factor ``E[u_d - 1/2 | b, b~]``:
    ``d/da_d E[f(b)] = E[1/2 (f(b) - f(b~)) (-1)^{b~_d} 1[b_d != b~_d] sigma(|a_d|)]``. Unbiased, and its
    variance never exceeds ARM's (it integrates ARM's noise out given the pair)."""

    def weights(self, logits: Tensor, draw: Draw) -> Tensor:
        b, b_tilde = draw.value
        sign = 1 - 2 * b_tilde
        return 0.5 * sign * (b != b_tilde).float() * torch.sigmoid(logits.abs())
