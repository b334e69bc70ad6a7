"""Active units (Burda et al. 2016, section 5.2): how many latent units the encoder uses.

A scalar unit ``u`` is active when its posterior mean varies across the data,
``A_u = Cov_x(E_{q(z|x)}[u]) > 0.01``. A unit with several coordinates (a categorical variable's probability
vector, a point on a simplex, an angle as ``(cos, sin)``) is active when the trace of the covariance of its
location exceeds the same threshold; for a scalar unit that is Burda et al.'s ``A_u``. The location is the
latent family's (``LatentFamily.unit_locations``): the posterior mean, or for a flow the base mean pushed
through it, and for two stochastic layers each layer's mean given the one before (neither has a closed-form
mean). An inactive unit's posterior mean is (nearly) the same for every image, as in posterior collapse.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

#: Burda et al.'s threshold on a unit's variance across the data
THRESHOLD = 1e-2


class UnitSpread:
    """Running sums, over the images seen, of each unit's location and its square (float64), per model."""

    def __init__(self) -> None:
        self.images = 0
        self.sums: tuple[Tensor, Tensor] | None = None

    def add(self, locations: Tensor) -> None:
        """``locations``: ``(models, images, units, coordinates)``."""
        locations = locations.detach().double()
        sums = (locations.sum(1), locations.square().sum(1))
        self.sums = sums if self.sums is None else (self.sums[0] + sums[0], self.sums[1] + sums[1])
        self.images += locations.shape[1]

    def active_units(self, total: Callable[[Tensor], Tensor] = lambda t: t) -> list[int]:
        """Per model, how many units' spread ``sum_c (S2 - S1^2 / n) / (n - 1)`` exceeds ``THRESHOLD``, with
        the sums and the image count first passed through ``total`` (across processes: a sum)."""
        first, second = (total(s) for s in self.sums)
        images = total(torch.tensor(float(self.images), dtype=torch.float64, device=first.device))
        spread = ((second - first.square() / images) / (images - 1)).sum(-1)
        return (spread > THRESHOLD).sum(-1).tolist()
