"""The inference gap of trained models taken apart (Cremer, Li & Duvenaud 2018; ``vae_zoo.amortization_gap``): for
each run (a run directory or a checkpoint of a model with a reparameterized posterior), over its first ``--images``
test images as evaluation binarizes them, the negative ELBO of the encoder's posterior, of the posterior refined for
each image (``--steps`` of Adam at ``--lr`` on its features), and the IW bound with ``--k`` samples (an estimate
of ``-log p(x)`` from above); the amortization gap (encoder's ELBO less the refined one) and the approximation gap
(the refined ELBO less the IW bound), in nats per image; one row per run, then the mean and sd of each column.

    python scripts/amortization_gap.py outputs/gaussian/0 outputs/gaussian/1 --images 1000 --steps 500
"""

from __future__ import annotations

from pathlib import Path

import torch
from runs_table import print_runs_table, run_test_images, runs_parser

import vae_zoo

COLUMNS = ("-ELBO, encoder", "-ELBO, refined", "IW bound", "amortization gap", "approximation gap")


def gaps(run: Path, images: int, steps: int, lr: float, samples: int, k: int, batch: int) -> list[float]:
    """The columns of ``COLUMNS`` for the run's first ``images`` test images, in batches of ``batch``."""
    x, seed = run_test_images(run, images, "amortization_gap.py")
    model = vae_zoo.load(run)
    torch.manual_seed(seed)
    totals = torch.zeros(3, dtype=torch.float64)
    for chunk in x.split(batch):
        result = model.amortization_gap(chunk, steps=steps, lr=lr, samples=samples)
        with torch.no_grad():
            bound = model.importance_weighted_nll(chunk, k)
        totals += torch.stack([v.double().sum() for v in (result.amortized, result.refined, bound)])
    encoder, refined, bound = (totals / len(x)).tolist()
    return [encoder, refined, bound, encoder - refined, refined - bound]


def main(argv: list[str] | None = None) -> None:
    parser = runs_parser(__doc__, images=1000)
    parser.add_argument("--steps", type=int, default=500, help="Adam steps refining each image's posterior")
    parser.add_argument("--lr", type=float, default=0.05, help="their learning rate, decayed linearly to 0")
    parser.add_argument("--samples", type=int, default=100, help="exact draws per ELBO estimate")
    parser.add_argument("--k", type=int, default=1000, help="samples of the IW bound")
    parser.add_argument("--batch", type=int, default=500, help="images refined at once")
    args = parser.parse_args(argv)
    settings = (args.images, args.steps, args.lr, args.samples, args.k, args.batch)
    rows = {run: gaps(run, *settings) for run in args.runs}
    print_runs_table(rows, COLUMNS, digits=2)


if __name__ == "__main__":
    main()
