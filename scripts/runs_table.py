"""What the per-run scripts share (``code_covariance.py``, ``amortization_gap.py``, ``codebook_usage.py``): their
command line (runs, ``--images``), each run's test images as evaluation reads them, and the table they print, a
Markdown row of values per run, then, for more than one run, the mean ± sd of each column."""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from torch import Tensor

from vae_zoo.compose import compose_config
from vae_zoo.saved_run import read_saved_run


def runs_parser(description: str, images: int) -> argparse.ArgumentParser:
    """A parser of the runs (run directories or checkpoints) and ``--images`` (default ``images``)."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", type=Path, help="run directories or checkpoints")
    parser.add_argument("--images", type=int, default=images, help="the first this many test images")
    return parser


def run_test_images(run: Path, images: int, script: str) -> tuple[Tensor, int]:
    """The run's first ``images`` test images as evaluation binarizes them, and the run's seed."""
    with tempfile.TemporaryDirectory() as tmp:  # as eval.py composes its config (Hydra's runtime registered)
        cfg = compose_config([f"ckpt_path={run}"], Path(tmp), config_name="eval")
    saved = read_saved_run(cfg, script)
    return saved.datamodule().sample_images("test", images), cfg.seed


def print_runs_table(rows: dict[Path, list[float]], columns: tuple[str, ...], digits: int) -> None:
    """``rows`` (run -> one value per column) with ``digits`` decimals."""
    print(f"| run | {' | '.join(columns)} |")
    print("|---|" + "---|" * len(columns))
    for run, values in rows.items():
        print(f"| {run} | " + " | ".join(f"{value:.{digits}f}" for value in values) + " |")
    if len(rows) > 1:
        cells = [
            f"{statistics.mean(c):.{digits}f} ± {statistics.stdev(c):.{digits}f}" for c in zip(*rows.values())
        ]
        print(f"| mean ± sd of {len(rows)} | " + " | ".join(cells) + " |")
