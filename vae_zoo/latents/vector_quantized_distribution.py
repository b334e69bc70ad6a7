"""Vector quantization's distributions (van den Oord et al. 2017): the posterior, a point mass at the codebook
vectors nearest the encoder's outputs, and the prior, independent categoricals over the codes at each position.

Both are over ``(positions, dim)`` matrices whose rows are codebook vectors. The codebook is ``(K, dim)``, or one
per packed model ``(N, K, dim)`` (``vae_zoo.packing``: the batch holds the models' images in turn, and each image
reads its model's); the prior's logits are ``(positions, K)``, or one per image ``(B, positions, K)``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Categorical, Distribution, constraints, register_kl

from vae_zoo.packed_batch import images_by_model, images_in_turn


def unstacked(codebook: Tensor) -> Tensor:
    """A pack of one model's stacked codebook ``(1, K, dim)`` as the model's own ``(K, dim)``, so that it computes as
    the unpacked model does; any other codebook as it is."""
    return codebook[0] if codebook.dim() == 3 and len(codebook) == 1 else codebook


def nearest_codes(vectors: Tensor, codebook: Tensor) -> Tensor:
    """The index of the codebook row nearest each row of ``vectors`` ``(..., positions, dim)`` in Euclidean
    distance, ``argmin_j ||e_j||^2 - 2 v^T e_j`` (``||v||^2`` is the same for every j): ``(..., positions)``. One
    codebook ``(K, dim)``: one fused matrix product over all rows; one per packed model ``(N, K, dim)``: one per
    model over its images' rows (``vectors`` ``(..., B, positions, dim)``, the models' images in turn)."""
    codebook = unstacked(codebook)
    norms = (codebook * codebook).sum(-1)
    if codebook.dim() == 2:
        rows = vectors.reshape(-1, vectors.shape[-1])
        distances = torch.addmm(norms, rows, codebook.T, alpha=-2)
        return distances.argmin(-1).view(vectors.shape[:-1])
    grouped = images_by_model(vectors, len(codebook), 2)
    rows = grouped.reshape(len(codebook), -1, vectors.shape[-1])
    distances = torch.baddbmm(norms.unsqueeze(1), rows, codebook.transpose(1, 2), alpha=-2)
    return images_in_turn(distances.argmin(-1).view(grouped.shape[:-1]), 1)


def code_vectors(codes: Tensor, codebook: Tensor) -> Tensor:
    """The codebook rows of ``codes`` ``(..., positions)``, ``(..., positions, dim)``: a lookup in one codebook, or
    in each packed model's own (``codes`` ``(..., B, positions)``), which selects each row exactly and passes its
    gradient to the rows selected."""
    codebook = unstacked(codebook)
    if codebook.dim() == 2:
        return F.embedding(codes, codebook)
    grouped = images_by_model(codes, len(codebook), 1)
    index = grouped.reshape(len(codebook), -1, 1).expand(-1, -1, codebook.shape[-1])
    return images_in_turn(codebook.gather(1, index).view(*grouped.shape, codebook.shape[-1]), 2)


def nearest_vectors(vectors: Tensor, codebook: Tensor) -> Tensor:
    """Each row of ``vectors`` replaced by its nearest codebook row."""
    return code_vectors(nearest_codes(vectors, codebook), codebook)


def codes_on_the_codebook(value: Tensor, codebook: Tensor) -> tuple[Tensor, Tensor]:
    """The codes of the matrices ``value`` ``(..., positions, dim)``, their nearest rows', and whether each matrix is
    those rows (lies on the codebook): ``(..., positions)`` and ``(...)``."""
    codes = nearest_codes(value, codebook)
    return codes, (code_vectors(codes, codebook) == value).all(-1).all(-1)


class OnTheCodebook(constraints.Constraint):
    """Matrices whose every row is a row of the codebook: a discrete support of ``K^positions`` points."""

    is_discrete = True
    event_dim = 2

    def __init__(self, codebook: Tensor) -> None:
        self.codebook = codebook
        super().__init__()

    def check(self, value: Tensor) -> Tensor:
        return codes_on_the_codebook(value, self.codebook)[1]


class VectorQuantized(Distribution):
    """``q(z|x) = delta(z - e_k(x))``, ``k_n(x) = argmin_j ||z_e,n(x) - e_j||``: the point mass at the nearest
    codebook vector of each encoder output ``z_e,n``, so ``log q = 0`` at its one point and the KL to a prior over
    the codes is ``-sum_n log p_n(k_n)``.

    ``rsample`` is the straight-through estimator of VQ-VAE: its value is exactly ``e_k`` and its gradient passes to
    ``z_e`` unchanged (``e_k + (z_e - stop(z_e))``). ``training_loss`` is the paper's codebook and commitment terms
    per image, ``||stop(z_e) - e_k||^2 + commitment ||z_e - stop(e_k)||^2``, which train the codebook and keep the
    encoder near it. A point mass has no score: ``grad log q`` is zero, so the score-function estimators refuse it
    (``vae_zoo.capabilities.SCORE``).
    """

    has_rsample = True
    point_mass = True
    arg_constraints: ClassVar[dict] = {}  # validation is off: the codes are computed, not given

    def __init__(self, encoded: Tensor, codebook: Tensor, commitment: float = 0.25) -> None:
        self.encoded, self.codebook, self.commitment = encoded, codebook, commitment
        self.codes = nearest_codes(encoded.detach(), codebook.detach())
        self.quantized = code_vectors(self.codes, codebook)
        super().__init__(encoded.shape[:-2], encoded.shape[-2:], validate_args=False)

    @property
    def support(self) -> OnTheCodebook:
        return OnTheCodebook(self.codebook.detach())

    @property
    def mean(self) -> Tensor:
        return self.quantized

    @property
    def mode(self) -> Tensor:
        return self.quantized

    @property
    def variance(self) -> Tensor:
        return torch.zeros_like(self.quantized)

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        z = self.quantized.detach() + (self.encoded - self.encoded.detach())
        return z.expand(self._extended_shape(sample_shape))

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        with torch.no_grad():
            return self.quantized.expand(self._extended_shape(sample_shape)).clone()

    def log_prob(self, value: Tensor) -> Tensor:
        """0 where ``value`` is the point, ``-inf`` elsewhere."""
        at_the_point = (value == self.quantized.detach()).all(-1).all(-1)
        return torch.where(at_the_point, 0.0, -math.inf).to(self.encoded.dtype)

    def entropy(self) -> Tensor:
        return self.encoded.new_zeros(self.batch_shape)

    def quantization_error(self) -> Tensor:
        """``||z_e - e_k||^2`` per image, summed over positions and coordinates."""
        return (self.encoded - self.quantized).square().sum((-2, -1))

    def training_loss(self, codebook_term: bool = True) -> Tensor:
        """``||stop(z_e) - e_k||^2 + commitment ||z_e - stop(e_k)||^2`` per image (its value
        ``(1 + commitment) ||z_e - e_k||^2``); without ``codebook_term`` (a codebook moved by moving averages
        instead) the commitment term alone."""
        commitment = self.commitment * (self.encoded - self.quantized.detach()).square().sum((-2, -1))
        if not codebook_term:
            return commitment
        return (self.encoded.detach() - self.quantized).square().sum((-2, -1)) + commitment


class CodePrior(Distribution):
    """``p(z) = prod_n Cat(k_n; softmax(l_n))`` over the codebook vector ``z_n = e_(k_n)`` at each position: uniform
    (``l = 0``) or learned logits. ``log_prob`` finds a matrix's codes (``-inf`` off the codebook)."""

    arg_constraints: ClassVar[dict] = {}  # validation is off: the codes are computed, not given

    def __init__(self, logits: Tensor, codebook: Tensor) -> None:
        self.logits, self.codebook = logits, codebook
        super().__init__(
            logits.shape[:-2], torch.Size((logits.shape[-2], codebook.shape[-1])), validate_args=False
        )

    @property
    def support(self) -> OnTheCodebook:
        return OnTheCodebook(self.codebook.detach())

    def log_prob_of_codes(self, codes: Tensor) -> Tensor:
        """``sum_n log p_n(k_n)`` of codes ``(..., positions)``."""
        log_probs = self.logits.log_softmax(-1).expand(*codes.shape, self.logits.shape[-1])
        return log_probs.gather(-1, codes.unsqueeze(-1)).squeeze(-1).sum(-1)

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        with torch.no_grad():
            logits = self.logits.expand(*self.batch_shape, *self.logits.shape[-2:])
            codes = Categorical(logits=logits, validate_args=False).sample(torch.Size(sample_shape))
            return code_vectors(codes, self.codebook)

    def log_prob(self, value: Tensor) -> Tensor:
        codes, on_the_codebook = codes_on_the_codebook(value, self.codebook.detach())
        return torch.where(on_the_codebook, self.log_prob_of_codes(codes), -math.inf)


@register_kl(VectorQuantized, CodePrior)
def kl_vector_quantized_code_prior(q: VectorQuantized, p: CodePrior) -> Tensor:
    """``KL(delta_k || p) = -sum_n log p_n(k_n)`` per image (``positions * log K`` under the uniform prior)."""
    return -p.log_prob_of_codes(q.codes)
