"""DIP-VAE (Kumar, Sattigeri & Balakrishnan 2018): the ELBO plus a penalty that moves a covariance of the codes
towards the identity, the standard Normal prior's, so that the aggregate posterior's units are decorrelated.

For a diagonal Normal posterior ``q(z|x) = N(mu(x), diag sigma^2(x))``, over each model's batch of B images:

    DIP-VAE-I   Cov = Cov_x[mu(x)]                                      (the covariance of the posterior means)
    DIP-VAE-II  Cov = Cov_x[mu(x)] + E_x[diag sigma^2(x)]               (the aggregate posterior's covariance)

    penalty = lambda_od sum_{i != j} Cov_ij^2 + lambda_d sum_i (Cov_ii - 1)^2

with ``Cov_x[mu] = (1/B) sum_b (mu_b - mean mu)(mu_b - mean mu)^T``, centred over the images (PyTorch-VAE's
``dip_vae.py`` centres each image over its units, leaves out the ``1/B`` and adds ``sigma^4`` for ``sigma^2``).
Packed models (``vae_zoo.packing``) each take their own images' covariance.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

#: ``objective.dip_covariance``: of the posterior means (DIP-VAE-I) or of the aggregate posterior (DIP-VAE-II)
DIP_COVARIANCES = ("means", "aggregate")


class CovarianceDistance(NamedTuple):
    """Per model (a scalar for one): ``off_diagonal``, ``sum_{i != j} Cov_ij^2``, and ``diagonal``,
    ``sum_i (Cov_ii - 1)^2``."""

    off_diagonal: Tensor
    diagonal: Tensor


def code_covariance(mean: Tensor, variance: Tensor, models: int, aggregate: bool) -> Tensor:
    """``(models, D, D)``: each model's ``Cov_x[mu(x)]`` over its images, plus ``E_x[diag sigma^2(x)]`` where
    ``aggregate``, from posterior means and variances ``(models * B, D)``, the batch holding each model's rows in
    turn."""
    mean = mean.unflatten(0, (models, -1))
    centred = mean - mean.mean(1, keepdim=True)
    covariance = centred.transpose(1, 2) @ centred / mean.shape[1]
    if aggregate:
        covariance = covariance + torch.diag_embed(variance.unflatten(0, (models, -1)).mean(1))
    return covariance


def distance_from_identity(covariance: Tensor) -> CovarianceDistance:
    """The DIP penalty's two sums for each ``(D, D)`` covariance of ``(models, D, D)``, a scalar each for one
    model."""
    diagonal = covariance.diagonal(dim1=-2, dim2=-1)
    off_diagonal = (covariance - torch.diag_embed(diagonal)).square().sum((-2, -1))
    distance = CovarianceDistance(off_diagonal, (diagonal - 1).square().sum(-1))
    return CovarianceDistance(*(t[0] for t in distance)) if len(covariance) == 1 else distance


def gaussian_total_correlation(covariance: Tensor) -> Tensor:
    """The total correlation of the Gaussian with ``covariance`` ``(..., D, D)``, ``sum_i H(z_i) - H(z)``:

        TC = 1/2 (sum_i log Cov_ii - log det Cov),

    0 for uncorrelated units; of the aggregate posterior's covariance, a measure of its units' dependence that
    needs no discriminator and no batch estimate (the TC of the aggregate posterior itself where it is Gaussian)."""
    return (covariance.diagonal(dim1=-2, dim2=-1).log().sum(-1) - torch.logdet(covariance)) / 2
