"""ARM: the augment-REINFORCE-merge estimator for Bernoulli latents (Yin & Zhou 2019)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Distribution

from vae_zoo.capabilities import BERNOULLI_LOGITS, coordinates
from vae_zoo.estimators.estimator import Cost, Draw, Estimator
from vae_zoo.estimators.relaxation import uniform


class ARM(Estimator):
    """An antithetic pair per image from one ``u ~ U(0, 1)^D``: ``b = 1[1 - u < sigma(a)]`` and
    ``b~ = 1[u < sigma(a)]``, both exact samples of q; then, per logit,
    ``d/da_d E[f(b)] = E_u[(f(b) - f(b~)) (u_d - 1/2)]``. Unbiased; two cost evaluations per image
    (``draws = 2``); the draw carries ``u`` to the surrogate. ``weights`` is the per-logit factor of
    ``f(b) - f(b~)``, which DisARM replaces."""

    requires = BERNOULLI_LOGITS
    draws = 2

    def draw(self, q: Distribution, sample_shape: torch.Size | tuple[int, ...] = ()) -> Draw:
        logits = coordinates(q).logits
        with torch.no_grad():
            noise = uniform(torch.Size(sample_shape) + logits.shape, logits.device)
            p = torch.sigmoid(logits.float())
            return Draw(torch.stack([(1 - noise < p).float(), (noise < p).float()]), noise)

    def sample(self, q: Distribution, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        return self.draw(q, sample_shape).value

    def weights(self, logits: Tensor, draw: Draw) -> Tensor:
        return draw.noise - 0.5

    def surrogate(self, q: Distribution, draw: Draw, cost: Cost) -> Tensor:
        logits = coordinates(q).logits
        difference = cost.value.detach()[0] - cost.value.detach()[1]  # per image, or per sample and image
        weights = self.weights(logits.detach().float(), draw)  # sample dims + logits' shape
        events = logits.dim() - difference.dim()
        gradient = difference.reshape(difference.shape + (1,) * events) * weights
        reduced = gradient.dim() - logits.dim()  # the sample dims the cost is a joint function of
        gradient = gradient.sum(tuple(range(reduced))) if reduced else gradient
        return (gradient * logits).flatten(difference.dim()).sum(-1).expand_as(cost.value)
