"""How far the covariance of the codes over the test images is from the identity, what DIP-VAE trains down
(``vae_zoo.objectives.disentangled_covariance``): for each run (a run directory or a checkpoint of an unconditional
model with a diagonal Normal posterior), ``sum_{i != j} Cov_ij^2`` and ``sum_i (Cov_ii - 1)^2`` of the posterior
means' covariance (DIP-VAE-I's) and of the aggregate posterior's (DIP-VAE-II's) over the first ``--images`` test
images, as evaluation binarizes them, and the total correlation of the Gaussian with the aggregate posterior's
covariance (``gaussian_total_correlation``: what beta-TCVAE and FactorVAE train down); one row per run, then the mean
and sd of each column.

    python scripts/code_covariance.py outputs/dip/0 outputs/dip/1 outputs/dip/2 --images 10000
"""

from __future__ import annotations

from pathlib import Path

import torch
from runs_table import print_runs_table, run_test_images, runs_parser

import vae_zoo
from vae_zoo.capabilities import DIAGONAL_NORMAL
from vae_zoo.errors import VaeZooError
from vae_zoo.objectives.disentangled_covariance import (
    code_covariance,
    distance_from_identity,
    gaussian_total_correlation,
)

COLUMNS = (
    "means: off-diagonal",
    "means: diagonal",
    "aggregate: off-diagonal",
    "aggregate: diagonal",
    "aggregate: Gaussian TC",
)


@torch.no_grad()
def distances(run: Path, images: int) -> list[float]:
    """The four sums and the total correlation of ``COLUMNS`` for the run's first ``images`` test images."""
    x, _seed = run_test_images(run, images, "code_covariance.py")
    q = vae_zoo.load(run).encode(x)
    if not DIAGONAL_NORMAL.met_by(q):
        raise VaeZooError(
            f"{run}: its posterior is not {DIAGONAL_NORMAL.needs}, whose covariance this measures"
        )
    mean, variance = q.base_dist.loc, q.base_dist.scale.square()
    covariances = [code_covariance(mean, variance, 1, aggregate) for aggregate in (False, True)]
    sums = [float(value) for covariance in covariances for value in distance_from_identity(covariance)]
    return [*sums, float(gaussian_total_correlation(covariances[1].double()))]


def main(argv: list[str] | None = None) -> None:
    args = runs_parser(__doc__, images=10000).parse_args(argv)
    rows = {run: distances(run, args.images) for run in args.runs}
    print_runs_table(rows, COLUMNS, digits=4)


if __name__ == "__main__":
    main()
