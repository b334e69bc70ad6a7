"""Vector-quantized latents (VQ-VAE, van den Oord, Vinyals & Kavukcuoglu 2017)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from vae_zoo.errors import ConfigError
from vae_zoo.latents.autoregressive_code_prior import AutoregressiveCodePrior, CodeMADE
from vae_zoo.latents.code_pixelcnn import CodePixelCNN
from vae_zoo.latents.codebook_ema import move_codebook
from vae_zoo.latents.codebook_restarts import restart_dead_codes
from vae_zoo.latents.family import LOGIT_PRIORS, LatentFamily
from vae_zoo.latents.vector_quantized_distribution import CodePrior, VectorQuantized, nearest_vectors

CODEBOOK_UPDATES = ("loss", "ema")
CODE_PRIORS = (*LOGIT_PRIORS, "autoregressive", "pixelcnn")
AUTOREGRESSIVE_PRIORS = ("autoregressive", "pixelcnn")


class VectorQuantizedLatent(LatentFamily):
    """``z_n = e_(k_n)``, ``k_n = argmin_j ||z_e,n(x) - e_j||``: each of ``positions`` encoder outputs ``z_e,n`` of
    ``dim`` coordinates replaced by its nearest row of a learned codebook ``e`` ``(k, dim)``.

    ``q(z|x)`` is the point mass there (``VectorQuantized``), trained with the straight-through gradient (its
    ``rsample``, through ``estimator=pathwise``) and the codebook and commitment terms (``own_loss``); ``p(z)`` is a
    categorical over the codes at each position, uniform (the paper's: the KL is ``positions * log k``) or with
    learned logits (the KL ``-sum_n log p_n(k_n)``), or ``autoregressive``, ``prod_n p(k_n | k_<n)`` from a MADE of
    ``prior_hidden`` units (``vae_zoo.latents.autoregressive_code_prior``; the KL ``-sum_n log p(k_n | k_<n)``),
    or ``pixelcnn``, the same over a code grid in raster order from a gated PixelCNN of ``prior_layers`` layers
    of ``prior_channels`` maps (``vae_zoo.latents.code_pixelcnn``; the paper's prior), both networks' weights
    drawn without advancing the global random stream, so that the rest of the model starts as with the other
    priors. A code is an argmin, so the KL's gradient reaches the prior's parameters alone. The codebook starts
    uniform on ``[-1/k, 1/k]``, as the reference implementations'. The decoder reads ``z`` flattened to
    ``positions * dim``.

    ``grid: true`` is the paper's spatial code grid: the encoder's features are ``positions`` locations of
    ``in_features / positions`` channels, channel by channel (``encoder=conv`` with ``model.encoder.grid=true``),
    each taken to ``dim`` coordinates by one linear map shared by every location (a 1x1 convolution), and the
    decoder reads the codes channel by channel too (``decoder=conv`` with ``model.decoder.grid=true``). The
    encoder's ``grid_shape`` ``(h, w)``, where it has one, must hold ``positions`` locations.

    ``codebook_update: loss`` trains the codebook with the codebook term by the optimizer (the paper's main text);
    ``ema`` moves it by exponential moving averages of the encoder outputs each code is chosen for, with ``decay``
    and the Laplace smoothing's ``epsilon`` (``vae_zoo.latents.codebook_ema``; the paper's appendix, VQ-VAE-2), and
    trains with the commitment term alone: the codebook and its averages are buffers. With ``restart_below`` > 0
    a code chosen less than that often per batch on average is restarted at one of the batch's encoder outputs
    (``vae_zoo.latents.codebook_restarts``; Jukebox's dead-code restarts).
    """

    own_loss_name = "vq_loss"
    prior_state = ("prior_logits", "code_prior")
    #: the encoder's ``grid_shape`` (None where it has none), which a grid's positions must fill
    sizes = ("grid_shape",)

    def __init__(
        self,
        in_features: int,
        positions: int = 16,
        k: int = 64,
        dim: int = 16,
        commitment: float = 0.25,
        prior: str = "uniform",
        prior_hidden: int = 512,
        prior_channels: int = 32,
        prior_layers: int = 6,
        codebook_update: str = "loss",
        decay: float = 0.99,
        epsilon: float = 1e-5,
        restart_below: float = 0.0,
        grid: bool = False,
        grid_shape: tuple[int, int] | None = None,
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
        if codebook_update not in CODEBOOK_UPDATES:
            raise ConfigError(
                f"model.latent.codebook_update={codebook_update!r} is not one of {', '.join(CODEBOOK_UPDATES)}"
            )
        if not 0 < decay < 1 or not epsilon > 0:
            raise ConfigError(
                f"model.latent.decay={decay} must be in (0, 1) and model.latent.epsilon={epsilon} > 0 (the "
                "moving averages' decay and smoothing)"
            )
        if not restart_below >= 0 or (restart_below > 0 and codebook_update != "ema"):
            raise ConfigError(
                f"model.latent.restart_below={restart_below} must be >= 0, and 0 unless "
                "model.latent.codebook_update=ema (a dead code is found by its moving-average count)"
            )
        if prior not in CODE_PRIORS:
            raise ConfigError(f"model.latent.prior={prior!r} is not one of {', '.join(CODE_PRIORS)}")
        prior_sizes = {
            "prior_hidden": prior_hidden,
            "prior_channels": prior_channels,
            "prior_layers": prior_layers,
        }
        for name, size in prior_sizes.items():
            if size < 1:
                raise ConfigError(f"model.latent.{name}={size} must be >= 1 (a size of the prior's network)")
        self.positions, self.k, self.dim, self.commitment = positions, k, dim, float(commitment)
        self.codebook_update, self.decay, self.epsilon = codebook_update, float(decay), float(epsilon)
        self.restart_below = float(restart_below)
        self.autoregressive = prior in AUTOREGRESSIVE_PRIORS
        if grid and grid_shape is not None and positions != grid_shape[0] * grid_shape[1]:
            raise ConfigError(
                f"model.latent.grid=true: model.latent.positions={positions} is not the encoder's "
                f"{grid_shape[0]} x {grid_shape[1]} grid -- set model.latent.positions={grid_shape[0] * grid_shape[1]}"
            )
        if prior == "pixelcnn" and not (grid and grid_shape):
            raise ConfigError(
                "model.latent.prior=pixelcnn reads the codes as a grid, and these are not one -- set "
                "model.latent.grid=true with encoder=conv and model.encoder.grid=true, or use "
                "model.latent.prior=autoregressive"
            )
        if grid and in_features % positions:
            raise ConfigError(
                f"model.latent.grid=true: the encoder's {in_features} features are not a grid of "
                f"model.latent.positions={positions} -- set it to the encoder's grid (encoder=conv with "
                "model.encoder.grid=true: ceil(H / 2^L) x ceil(W / 2^L) after L layers, 49 for 28 x 28 and two)"
            )
        self.grid = grid
        self.sample_features = positions * dim
        self.head = nn.Linear(
            in_features // positions if grid else in_features, dim if grid else positions * dim
        )
        codebook = torch.empty(k, dim).uniform_(-1 / k, 1 / k)
        if codebook_update == "ema":
            self.register_buffer("codebook", codebook)
            self.register_buffer("code_counts", torch.zeros(k))
            self.register_buffer("code_sums", torch.zeros(k, dim))
        else:
            self.codebook = nn.Parameter(codebook)
        #: packed, one codebook (and its averages) per model ``(N, k, dim)``, which each image reads its model's of
        self.per_model_state = (
            ("codebook", "code_counts", "code_sums") if codebook_update == "ema" else ("codebook",)
        )
        if self.autoregressive:
            with torch.random.fork_rng(devices=[]):
                self.code_prior = (
                    CodePixelCNN(*grid_shape, k, prior_channels, prior_layers)
                    if prior == "pixelcnn"
                    else CodeMADE(positions, k, prior_hidden)
                )
        else:
            self.register_prior_logits((positions, k), prior)
        #: a learned prior's logits, each image reading its model's copy when packed
        self.per_image_parameters = () if self.autoregressive else ("prior_logits",)

    def posterior(self, features: Tensor) -> VectorQuantized:
        if self.grid:  # (..., C * P) -> (P, ..., C): the positions ahead of the batch, as sample dims
            encoded = self.head(features.unflatten(-1, (-1, self.positions)).movedim(-1, 0)).movedim(0, -2)
        else:
            encoded = self.head(features).unflatten(-1, (self.positions, self.dim))
        return VectorQuantized(encoded, self.codebook, self.commitment)

    def prior(self) -> CodePrior | AutoregressiveCodePrior:
        if self.autoregressive:
            return AutoregressiveCodePrior(self.code_prior, self.codebook)
        return CodePrior(self.prior_logits, self.codebook)

    def decoder_input(self, z: Tensor) -> Tensor:
        """``z`` ``(..., positions, dim)`` flattened: position by position, or channel by channel on a grid."""
        return z.transpose(-1, -2).flatten(-2) if self.grid else z.flatten(-2)

    def onto_support(self, z: Tensor) -> Tensor:
        """Each row of ``z`` replaced by its nearest codebook vector."""
        return nearest_vectors(z, self.codebook)

    def own_loss(self, q: Distribution) -> Tensor:
        return q.training_loss(codebook_term=self.codebook_update == "loss")

    def update_statistics(self, q: Distribution, weights: Tensor | None = None) -> None:
        """With ``codebook_update: ema``, the codebook's moving-average step from this batch's encoder outputs, then
        its dead codes' restarts there."""
        if self.codebook_update == "ema":
            state = (self.codebook, self.code_counts, self.code_sums)
            encoded = q.encoded.detach()
            moved = move_codebook(*state, encoded, q.codes, weights, self.decay, self.epsilon)
            if self.restart_below > 0:
                restart_dead_codes(*state, encoded, weights, self.restart_below, moved)
