"""Inverse autoregressive flows with MADE layers (Kingma et al. 2016; Germain et al. 2015)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.distributions import Transform, constraints

from vae_zoo.errors import ConfigError
from vae_zoo.flows.flow import Flow


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask (MADE's autoregressive connectivity)."""

    def __init__(self, in_features: int, out_features: int, mask: Tensor) -> None:
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """``(m, s)`` from ``z`` with output ``i`` depending only on ``z_<i`` in ``order``: hidden units get degrees
    ``1..D-1``, a unit of degree d sees inputs of degree <= d, an output of degree i sees units of degree < i;
    the context ``h`` (from the encoder) is added to the hidden layer."""

    def __init__(self, dim: int, hidden: int, context: int, order: Tensor) -> None:
        super().__init__()
        degree_in = order + 1  # 1..D
        degree_hidden = torch.arange(hidden) % max(dim - 1, 1) + 1
        self.hidden = MaskedLinear(dim, hidden, (degree_hidden[:, None] >= degree_in[None, :]).float())
        out_mask = (degree_in[:, None] > degree_hidden[None, :]).float()
        self.out = MaskedLinear(hidden, 2 * dim, torch.cat([out_mask, out_mask]))
        self.context = nn.Linear(context, hidden)

    def forward(self, z: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        """``(m, s)`` for ``z`` (any leading sample dims) given the projected context ``self.context(h)``."""
        m, s = self.out(torch.relu(self.hidden(z) + context)).chunk(2, dim=-1)
        return m, s


class IAFTransform(Transform):
    """``z' = sigma * z + (1 - sigma) * m`` with ``(m, s) = MADE(z, h)``, ``sigma = sigmoid(s + 1.5)``
    (Kingma et al.'s numerically stable update, biased towards keeping z); ``log |det J| = sum log sigma``
    since the Jacobian is triangular in the MADE's order."""

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, made: MADE, h: Tensor) -> None:
        super().__init__(cache_size=1)
        self.made, self.context = made, made.context(h)  # projected once per image, shared by its samples

    def _gate(self, z: Tensor) -> tuple[Tensor, Tensor]:
        m, s = self.made(z, self.context)
        return m, s + 1.5

    def _call(self, z: Tensor) -> Tensor:
        m, s = self._gate(z)
        sigma = torch.sigmoid(s)
        return sigma * z + (1 - sigma) * m

    def _inverse(self, y: Tensor) -> Tensor:
        raise NotImplementedError(
            "an IAF layer's inverse is sequential: log q is known at the flow's own samples"
        )

    def log_abs_det_jacobian(self, z: Tensor, y: Tensor) -> Tensor:
        return torch.nn.functional.logsigmoid(self._gate(z)[1]).sum(-1)


class IAFFlow(Flow):
    """``layers`` IAF transforms, MADEs of ``hidden`` units with a context of ``context`` features computed
    from the encoder's; the variable order is reversed between layers."""

    def __init__(
        self, latent_features: int, in_features: int, layers: int = 2, hidden: int = 300, context: int = 100
    ):
        super().__init__(latent_features, in_features)
        if layers < 1 or hidden < 1 or context < 1:
            raise ConfigError(
                f"model.flow.layers={layers}, hidden={hidden} and context={context} must be >= 1"
            )
        orders = [
            torch.arange(latent_features) if i % 2 == 0 else torch.arange(latent_features).flip(0)
            for i in range(layers)
        ]
        self.made = nn.ModuleList(MADE(latent_features, hidden, context, order) for order in orders)
        self.context = nn.Linear(in_features, context)

    def transforms(self, features: Tensor) -> list[Transform]:
        h = torch.relu(self.context(features))
        return [IAFTransform(made, h) for made in self.made]
