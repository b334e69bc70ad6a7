"""The flow contract: transforms of the posterior's samples whose parameters the encoder's features give."""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor, nn
from torch.distributions import Transform

from vae_zoo.capabilities import REAL, Requirement


class Flow(ABC, nn.Module):
    """``K`` invertible layers ``z_K = f_K(... f_1(z_0))`` applied to ``z_0 ~ q0(z|x)``, each a
    ``torch.distributions.Transform`` whose parameters are computed from the encoder's ``features`` (amortised),
    so that ``log q(z_K|x) = log q0(z_0|x) - sum_k log |det J_k|`` (``FlowPosterior``). The transforms keep
    their last input (``cache_size=1``): the density is evaluated at the flow's own samples, which is all the
    objectives and the importance-weighted bound ask. Built from ``conf/flow/<name>.yaml``
    (``# @package model.flow``) with the sizes ``latent_features`` and ``in_features`` (the features')."""

    requires: Requirement = REAL

    def __init__(self, latent_features: int, in_features: int) -> None:
        super().__init__()
        self.latent_features, self.in_features = latent_features, in_features

    @abstractmethod
    def transforms(self, features: Tensor) -> list[Transform]:
        """The layers for a batch of encoder features ``(B, in_features)``."""
