"""What the doubly reparameterized gradient costs: the training step of ``objective=iwae`` with
``objective.gradient=dreg`` against the same step with IWAE's own gradient, in one process.

Burda et al.'s model (``experiment=iwae_mnist``: 784-200-200-50 tanh, batch 100) at each ``--ks`` value; a step is
the objective's loss, its backward pass and the optimizer step, as Lightning runs them. Rounds of ``--steps``
steps of each gradient in turn, so that the machine's drifts hit both alike; the ratio is the median over rounds
of DReG's time per step over IWAE's.

    python scripts/dreg_speed.py                           # k = 5 and 50, 5 rounds of 20 steps
    python scripts/dreg_speed.py --ks 5 --rounds 9 --out outputs/dreg_speed.md
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch
from benchmark import git_commit, interleaved_step_seconds, step_run
from grad_variance import print_and_write

from vae_zoo.cli import build_datamodule_and_model
from vae_zoo.compose import compose_config

GRADIENTS = ("total", "dreg")


def step_seconds(k: int, rounds: int, steps: int, tmp: Path) -> dict[str, list[float]]:
    """Seconds per training step of each gradient at ``k``, per round (after one warm-up round)."""
    runs = {}
    for gradient in GRADIENTS:
        overrides = [
            "experiment=iwae_mnist",
            "objective=iwae",
            f"objective.k={k}",
            f"objective.gradient={gradient}",
        ]
        cfg = compose_config([*overrides, "seed=0"], tmp)
        datamodule, model = build_datamodule_and_model(cfg)
        runs[gradient] = step_run(datamodule, model, cfg.data.batch_size, steps)
    return interleaved_step_seconds(runs, rounds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ks", nargs="*", type=int, default=[5, 50])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (after one warm-up round)")
    parser.add_argument("--steps", type=int, default=20, help="steps of each gradient per round")
    parser.add_argument("--out", type=Path, default=Path("outputs/dreg_speed.md"))
    args = parser.parse_args(argv)

    lines = [
        (
            f"Training step of experiment=iwae_mnist objective=iwae, {args.rounds} rounds of {args.steps} steps of "
            f"each gradient in turn, commit {git_commit()}, {torch.get_num_threads()} threads."
        ),
        "",
        "| k | ms per step, IWAE | ms per step, DReG | DReG / IWAE (min–max over rounds) |",
        "|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for k in args.ks:
            seconds = step_seconds(k, args.rounds, args.steps, Path(tmp))
            ratios = [d / t for d, t in zip(seconds["dreg"], seconds["total"])]
            lines.append(
                f"| {k} | {1000 * statistics.median(seconds['total']):.2f} | "
                f"{1000 * statistics.median(seconds['dreg']):.2f} | {statistics.median(ratios):.3f} "
                f"({min(ratios):.3f}–{max(ratios):.3f}) |"
            )
    print_and_write(lines, args.out)


if __name__ == "__main__":
    main()
