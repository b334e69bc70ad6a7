"""Vector-quantized latents (VQ-VAE, van den Oord, Vinyals & Kavukcuoglu 2017)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from vae_zoo.errors import ConfigError
from vae_zoo.latents.family import LatentFamily, check_logit_prior
from vae_zoo.latents.vector_quantized_distribution import CodePrior, VectorQuantized, nearest_vectors


class VectorQuantizedLatent(LatentFamily):
    """``z_n = e_(k_n)``, ``k_n = argmin_j ||z_e,n(x) - e_j||``: each of ``positions`` encoder outputs ``z_e,n`` of
    ``dim`` coordinates replaced by its nearest row of a learned codebook ``e`` ``(k, dim)``.

    ``q(z|x)`` is the point mass there (``VectorQuantized``), trained with the straight-through gradient (its
    ``rsample``, through ``estimator=pathwise``) and the codebook and commitment terms (``own_loss``); ``p(z)`` is a
    categorical over the codes at each position, uniform (the paper's: the KL is ``positions * log k``) or with
    learned logits (the KL ``-sum_n log p_n(k_n)``). The codebook starts uniform on ``[-1/k, 1/k]``, as the
    reference implementations'. The decoder reads ``z`` flattened to ``positions * dim``.
    """

    per_image_parameters = ("prior_logits",)
    #: packed, one codebook per model ``(N, k, dim)``, which each image reads its model's rows of
    per_model_state = ("codebook",)
    own_loss_name = "vq_loss"

    def __init__(
        self,
        in_features: int,
        positions: int = 16,
        k: int = 64,
        dim: int = 16,
        commitment: float = 0.25,
        prior: str = "uniform",
    ) -> None:
        super().__init__(in_features)
        if positions < 1 or dim < 1:
            raise ConfigError(f"model.latent.positions={positions} and model.latent.dim={dim} must be >= 1")
        if k < 2:
            raise ConfigError(f"model.latent.k={k} must be >= 2 (codebook vectors)")
        if not commitment >= 0:
            raise ConfigError(
                f"model.latent.commitment={commitment} must be >= 0 (the commitment term's weight)"
            )
        check_logit_prior(prior)
        self.positions, self.k, self.dim, self.commitment = positions, k, dim, float(commitment)
        self.sample_features = positions * dim
        self.head = nn.Linear(in_features, positions * dim)
        self.codebook = nn.Parameter(torch.empty(k, dim).uniform_(-1 / k, 1 / k))
        self.register_prior_logits((positions, k), prior)

    def posterior(self, features: Tensor) -> VectorQuantized:
        encoded = self.head(features).unflatten(-1, (self.positions, self.dim))
        return VectorQuantized(encoded, self.codebook, self.commitment)

    def prior(self) -> CodePrior:
        return CodePrior(self.prior_logits, self.codebook)

    def decoder_input(self, z: Tensor) -> Tensor:
        return z.flatten(-2)

    def onto_support(self, z: Tensor) -> Tensor:
        """Each row of ``z`` replaced by its nearest codebook vector."""
        return nearest_vectors(z, self.codebook)

    def own_loss(self, q: Distribution) -> Tensor:
        return q.training_loss()
