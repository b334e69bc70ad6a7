"""A posterior pushed through a flow."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Distribution, Transform, TransformedDistribution


class FlowPosterior(TransformedDistribution):
    """``q(z_K|x)``: the base posterior ``q0`` through the flow's transforms. ``rsample``/``sample`` push
    ``q0``'s draws through every layer; ``log_prob`` is defined at the flow's own last samples (the
    transforms' cache), where it is ``log q0(z_0) - sum_k log |det J_k|``. ``mean`` is the base mean pushed
    through the flow: the posterior's location for plots (its true mean has no closed form)."""

    def __init__(self, base: Distribution, transforms: list[Transform]) -> None:
        super().__init__(base, transforms, validate_args=False)

    @property
    def mean(self) -> Tensor:
        with torch.no_grad():
            z = self.base_dist.mean
            for transform in self.transforms:
                z = transform(z)
        return z
