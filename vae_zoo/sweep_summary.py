"""A multirun's summary: every job's overrides and final metrics, as CSV and markdown in the sweep dir."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)
FIRST = (
    "job",
    "overrides",
    "model",
    "latent",
    "estimator",
    "objective",
    "data",
    "seed",
    "val/elbo",
    "test/elbo",
    "test/nll_iw",
)


def collect(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per job directory (``<sweep_dir>/<n>/``), in job order; a job without metrics.json is
    listed with ``status: no metrics`` (it failed or is still running)."""
    rows = []
    jobs = [d for d in sweep_dir.iterdir() if (d / ".hydra" / "overrides.yaml").is_file()]
    for job in sorted(
        jobs, key=lambda d: (not d.name.isdigit(), int(d.name) if d.name.isdigit() else d.name)
    ):
        overrides = OmegaConf.to_container(OmegaConf.load(job / ".hydra" / "overrides.yaml"))
        row: dict[str, Any] = {"job": job.name, "overrides": " ".join(overrides)}
        metrics = job / "metrics.json"
        row.update(json.loads(metrics.read_text()) if metrics.is_file() else {"status": "no metrics"})
        rows.append(row)
    return rows


def write_summary(sweep_dir: Path, rows: list[dict[str, Any]]) -> None:
    columns = [c for c in FIRST if any(c in r for r in rows)]
    columns += sorted({c for r in rows for c in r} - set(columns) - {"checkpoint"})
    with open(sweep_dir / "summary.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)

    def cell(value: Any) -> str:
        return f"{value:.2f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    (sweep_dir / "summary.md").write_text("\n".join(lines) + "\n")


class SweepSummary(Callback):
    """Hydra callback: after a multirun, writes ``summary.csv`` and ``summary.md`` in the sweep dir."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        write_summary(sweep_dir, collect(sweep_dir))
        log.info("sweep summary: %s", sweep_dir / "summary.md")
