"""A trained table model's samples against its data: each column's marginal, as one PNG and a Markdown table.

    python scripts/table_marginals.py outputs/tables/breast_cancer_run --out docs/img/table_marginals.png

Draws as many rows from the model (``x ~ p(x|z)``, ``z ~ p(z)``) as the run's ``--split`` holds (default: the
training rows, the distribution the model fit) and compares, per column, the mean and standard deviation of the
samples and of those rows (0/1 columns: the share of ones),
and the two-sample Kolmogorov-Smirnov statistic of the real columns; the PNG overlays the histograms of the
first ``--panels`` columns.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from omegaconf import OmegaConf
from scipy.stats import ks_2samp

import vae_zoo
from vae_zoo.components import build
from vae_zoo.data.table import TableDataModule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run directory of data=table")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--panels", type=int, default=8, help="columns drawn as histograms")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--split", default="train", help="the rows compared: train (what the model fit), val or test"
    )
    args = parser.parse_args()

    config = OmegaConf.load(args.run / ".hydra" / "config.yaml")
    datamodule = build(OmegaConf.to_container(config.data, resolve=True), TableDataModule, "data")
    test = datamodule.sample_images(args.split, len(datamodule.splits[args.split])).flatten(1).numpy()
    model = vae_zoo.load(args.run)
    torch.manual_seed(args.seed)
    samples = model.sample(len(test)).flatten(1).numpy()
    binary = datamodule.binary.numpy()

    print(f"| column | kind | {args.split} mean | sample mean | {args.split} sd | sample sd | KS statistic |")
    print("|---|---|---|---|---|---|---|")
    for j, name in enumerate(datamodule.names):
        kind = "binary" if binary[j] else "real"
        ks = "" if binary[j] else f"{ks_2samp(test[:, j], samples[:, j]).statistic:.3f}"
        print(
            f"| {name} | {kind} | {test[:, j].mean():.4g} | {samples[:, j].mean():.4g} | {test[:, j].std():.4g} | "
            f"{samples[:, j].std():.4g} | {ks} |"
        )

    panels = min(args.panels, len(datamodule.names))
    figure = Figure(figsize=(3 * min(panels, 4), 2.4 * -(-panels // 4)), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(f"{args.run.name}: {len(test)} {args.split} rows against as many samples", fontsize=9)
    for j in range(panels):
        axes = figure.add_subplot(-(-panels // 4), min(panels, 4), j + 1)
        bins = np.histogram_bin_edges(np.concatenate([test[:, j], samples[:, j]]), bins=20)
        axes.hist(test[:, j], bins=bins, alpha=0.6, label=f"{args.split} rows", density=True)
        axes.hist(samples[:, j], bins=bins, alpha=0.6, label="samples", density=True)
        axes.set_title(datamodule.names[j], fontsize=8)
        axes.tick_params(labelsize=6)
    figure.axes[0].legend(fontsize=7)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.canvas.print_png(args.out)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
