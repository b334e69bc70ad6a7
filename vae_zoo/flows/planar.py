"""Planar flows (Rezende & Mohamed 2015)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Transform, constraints

from vae_zoo.errors import ConfigError
from vae_zoo.flows.flow import Flow


class PlanarTransform(Transform):
    """``f(z) = z + u^ tanh(w.z + b)`` with ``u^ = u + (m(w.u) - w.u) w / |w|^2``, ``m(a) = -1 + softplus(a)``,
    which keeps ``w.u^ >= -1`` so that ``f`` is invertible; ``log |det J| = log |1 + u^.psi(z)|``,
    ``psi(z) = tanh'(w.z + b) w``. Parameters per image: ``u``, ``w`` ``(B, D)``, ``b`` ``(B,)``."""

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, u: Tensor, w: Tensor, b: Tensor) -> None:
        super().__init__(cache_size=1)
        wu = (w * u).sum(-1, keepdim=True)
        self.u = u + (F.softplus(wu) - 1 - wu) * w / w.square().sum(-1, keepdim=True).clamp_min(1e-8)
        self.w, self.b = w, b

    def _call(self, z: Tensor) -> Tensor:
        return z + self.u * torch.tanh((z * self.w).sum(-1, keepdim=True) + self.b.unsqueeze(-1))

    def _inverse(self, y: Tensor) -> Tensor:
        raise NotImplementedError(
            "a planar flow's inverse has no closed form: log q is known at its own samples"
        )

    def log_abs_det_jacobian(self, z: Tensor, y: Tensor) -> Tensor:
        derivative = 1 - torch.tanh((z * self.w).sum(-1) + self.b).square()
        return torch.log((1 + derivative * (self.w * self.u).sum(-1)).abs() + 1e-12)


class PlanarFlow(Flow):
    """``layers`` planar transforms whose ``u``, ``w``, ``b`` are a linear function of the encoder's features
    (weights initialised near zero, so each layer starts nearly the same for every image: ``u ~ 0``,
    ``w ~ N(0, 1/D)``, ``b = 0``)."""

    def __init__(self, latent_features: int, in_features: int, layers: int = 10) -> None:
        super().__init__(latent_features, in_features)
        if layers < 1:
            raise ConfigError(f"model.flow.layers={layers} must be >= 1")
        self.layers = layers
        self.parameters_of = nn.Linear(in_features, layers * (2 * latent_features + 1))
        nn.init.normal_(self.parameters_of.weight, std=1e-3)
        with torch.no_grad():
            bias = self.parameters_of.bias.view(layers, 2 * latent_features + 1)
            bias.zero_()
            bias[:, latent_features : 2 * latent_features].normal_(std=latent_features**-0.5)

    def transforms(self, features: Tensor) -> list[Transform]:
        d = self.latent_features
        per_layer = self.parameters_of(features).unflatten(-1, (self.layers, 2 * d + 1)).unbind(-2)
        return [PlanarTransform(p[..., :d], p[..., d : 2 * d], p[..., 2 * d]) for p in per_layer]
