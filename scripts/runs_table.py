"""The table the per-run scripts print (``code_covariance.py``, ``amortization_gap.py``): a Markdown row of values
per run, then, for more than one run, the mean ± sd of each column."""

from __future__ import annotations

import statistics
from pathlib import Path


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
