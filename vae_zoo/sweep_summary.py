"""A multirun's summary: every job's overrides and final metrics, as CSV and markdown in the sweep dir, and
the jobs that differ only in ``seed`` aggregated: mean and sample standard deviation over the seeds."""

from __future__ import annotations

import csv
import json
import logging
import statistics
import sys
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
NOT_AGGREGATED = {"seed", "iw_samples", "epochs", "global_step"}  # they describe a run, not measure it


def seed_groups(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Jobs with metrics grouped by their overrides less ``seed=``; only groups of two or more seeds."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if "status" in row:
            continue
        key = " ".join(o for o in row["overrides"].split() if not o.startswith("seed="))
        groups.setdefault(key, []).append(row)
    return {key: jobs for key, jobs in groups.items() if len({job.get("seed") for job in jobs}) > 1}


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per seed group, a ``mean`` and a ``std`` row (sample standard deviation, n - 1) of every metric."""
    summary = []
    for key, jobs in seed_groups(rows).items():
        seeds = ",".join(str(job.get("seed")) for job in jobs)
        metrics = sorted(
            {
                m
                for job in jobs
                for m, v in job.items()
                if isinstance(v, int | float) and m not in NOT_AGGREGATED
            }
        )
        for statistic in ("mean", "std"):
            row: dict[str, Any] = {"job": f"{statistic} of seeds {seeds}", "overrides": key, "n": len(jobs)}
            for metric in metrics:
                values = [float(job[metric]) for job in jobs if metric in job]
                row[metric] = statistics.mean(values) if statistic == "mean" else statistics.stdev(values)
            summary.append(row)
    return summary


def collect(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per job directory (``<sweep_dir>/<n>/``, or any ``hydra.sweep.subdir`` below it: one made of
    ``${hydra.job.override_dirname}`` nests where a value holds a ``/``, as ``optimized_metric=val/iwae_5``), in
    job order; a job without metrics.json is listed with ``status: no metrics`` (it failed or is still running)."""
    rows = []
    jobs = [path.parent.parent.relative_to(sweep_dir) for path in sweep_dir.glob("**/.hydra/overrides.yaml")]
    for job in sorted(
        jobs, key=lambda d: (not d.name.isdigit(), int(d.name) if d.name.isdigit() else str(d))
    ):
        overrides = OmegaConf.to_container(OmegaConf.load(sweep_dir / job / ".hydra" / "overrides.yaml"))
        row: dict[str, Any] = {"job": str(job), "overrides": " ".join(overrides)}
        metrics = sweep_dir / job / "metrics.json"
        row.update(json.loads(metrics.read_text()) if metrics.is_file() else {"status": "no metrics"})
        rows.append(row)
    return rows


def write_summary(sweep_dir: Path, rows: list[dict[str, Any]]) -> None:
    """``summary.csv``: the job rows, then the seed groups' mean and std rows; ``summary.md``: the jobs'
    table and, where seeds repeat, a table of ``mean ± std (n)`` per group."""
    aggregated = aggregate(rows)
    columns = [c for c in FIRST if any(c in r for r in rows)]
    columns += sorted({c for r in rows + aggregated for c in r} - set(columns) - {"checkpoint"})
    with open(sweep_dir / "summary.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows + aggregated)

    def cell(value: Any) -> str:
        return f"{value:.2f}" if isinstance(value, float) else str(value)

    job_columns = [c for c in columns if any(c in r for r in rows)]
    lines = ["| " + " | ".join(job_columns) + " |", "|" + "---|" * len(job_columns)]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in job_columns) + " |" for r in rows]
    if aggregated:
        means, stds = aggregated[0::2], aggregated[1::2]
        metrics = [c for c in columns if c in means[0] and c not in ("job", "overrides", "n")]
        lines += ["", "Seeds aggregated: mean ± sample standard deviation over n seeds.", ""]
        lines += ["| overrides | n | " + " | ".join(metrics) + " |", "|" + "---|" * (len(metrics) + 2)]
        for mean, std in zip(means, stds):
            cells = [f"{mean[m]:.2f} ± {std[m]:.2f}" if m in mean else "" for m in metrics]
            lines.append(f"| {mean['overrides'] or '(defaults)'} | {mean['n']} | " + " | ".join(cells) + " |")
    (sweep_dir / "summary.md").write_text("\n".join(lines) + "\n")


class SweepSummary(Callback):
    """Hydra callback: after a multirun, writes ``summary.csv`` and ``summary.md`` in the sweep dir; where a job
    wrote no ``metrics.json`` (a packed job that failed alone), then exits with status 2 naming them."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        rows = collect(sweep_dir)
        write_summary(sweep_dir, rows)
        log.info("sweep summary: %s", sweep_dir / "summary.md")
        failed = [row["job"] for row in rows if "status" in row]
        if failed:  # jobs of a pack that failed alone (their errors were printed); the others finished
            print(
                f"error: {len(failed)} of {len(rows)} jobs wrote no metrics.json (jobs {', '.join(failed)}): "
                f"their errors are above, the summary lists the others -- {sweep_dir / 'summary.md'}",
                file=sys.stderr,
            )
            sys.exit(2)
