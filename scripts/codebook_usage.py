"""How trained VQ-VAEs (``latent=vector_quantized``) use their codebooks: for each run (a run directory or a
checkpoint), over its first ``--images`` test images as evaluation binarizes them, the negative ELBO and its two
terms (the KL is the prior's ``-sum_n log p_n(k_n)``), the squared distance from the encoder's outputs to their
codes, how many of the k codebook vectors some image uses, and the perplexity ``exp H(p)`` of the codes' frequencies
``p`` over all images and positions (k where every code is used equally, 1 where one code is); one row per run,
then the mean and sd of each column.

    python scripts/codebook_usage.py outputs/vq/0 outputs/vq/1 --images 10000
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from runs_table import print_runs_table, run_test_images, runs_parser

import vae_zoo
from vae_zoo.errors import ConfigError

COLUMNS = ("-ELBO", "-log p(x|z)", "KL", "||z_e - e||^2", "codes used", "perplexity")


def usage(run: Path, images: int, batch: int) -> list[float]:
    """The columns of ``COLUMNS`` for the run's first ``images`` test images, in batches of ``batch``."""
    x, _seed = run_test_images(run, images, "codebook_usage.py")
    model = vae_zoo.load(run)
    if not hasattr(model.latent, "codebook"):
        raise ConfigError(f"{run} is not a VQ-VAE (latent=vector_quantized): it has no codebook")
    totals = torch.zeros(3, dtype=torch.float64)
    counts = torch.zeros(model.latent.k, dtype=torch.float64)
    with torch.no_grad():
        for chunk in x.split(batch):
            q = model.encode(chunk)
            recon, kl = model.nll(chunk, q.sample()), model.kl(q)
            totals += torch.stack([v.double().sum() for v in (recon, kl, q.quantization_error())])
            counts += torch.bincount(q.codes.flatten(), minlength=model.latent.k).double()
    recon, kl, error = (totals / len(x)).tolist()
    frequencies = counts[counts > 0] / counts.sum()
    perplexity = torch.exp(-(frequencies * frequencies.log()).sum()).item()
    return [recon + kl, recon, kl, error, float(len(frequencies)), perplexity]


def main(argv: list[str] | None = None) -> None:
    parser = runs_parser(__doc__, images=10000)
    parser.add_argument("--batch", type=int, default=1000, help="images encoded at once")
    args = parser.parse_args(argv)
    try:
        rows = {run: usage(run, args.images, args.batch) for run in args.runs}
    except ConfigError as error:
        sys.exit(f"error: {error}")
    print_runs_table(rows, COLUMNS, digits=2)


if __name__ == "__main__":
    main()
