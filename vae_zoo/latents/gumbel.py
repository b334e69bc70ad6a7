"""Gumbel sampling of categorical variables (Gumbel 1954; Maddison et al. 2014; Jang et al. 2016).

With ``g_i = -log(-log u_i)``, ``u_i ~ U(0, 1)`` i.i.d.:
    Gumbel-Max      ``one_hot(argmax_i (log p_i + g_i))`` is an exact sample of Categorical(p);
    Gumbel-Softmax  ``softmax((log p + g) / tau)`` is its relaxation, one-hot as ``tau -> 0``
                    (``vae_zoo.estimators.relaxation``).
Noise is drawn in float32 with autocast off, and ``u`` is clamped to ``[tiny, 1 - eps]`` of float32,
so ``g`` lies in about ``[-4.5, 16]`` and half-precision training never sees an infinite noise value.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

_F32 = torch.finfo(torch.float32)


def gumbel_noise(shape: torch.Size | tuple[int, ...], device: torch.device) -> Tensor:
    """Standard Gumbel noise ``-log(-log u)`` in float32."""
    with torch.autocast(device.type, enabled=False):
        u = torch.rand(shape, device=device, dtype=torch.float32).clamp_(_F32.tiny, 1.0 - _F32.eps)
        return -torch.log(-torch.log(u))


def gumbel_max(logits: Tensor, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
    """Exact one-hot samples of ``Categorical(softmax(logits))`` over the last dim, shape ``sample_shape + logits.shape``."""
    with torch.no_grad(), torch.autocast(logits.device.type, enabled=False):
        noise = gumbel_noise(torch.Size(sample_shape) + logits.shape, logits.device)
        return F.one_hot((logits.float() + noise).argmax(-1), logits.shape[-1]).float()
