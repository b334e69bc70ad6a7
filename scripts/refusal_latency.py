"""How soon a command line that does not compose is refused: train.py's first step as it runs (the check
``vae_zoo.commands`` makes before torch and Lightning are imported) against the same check with ``vae_zoo.cli``
imported first (what every run imports, and what the refusal waited for before), each in a fresh interpreter,
alternated, and the ratio of the medians. Only the check runs: an override that composes is reported, not trained.

    python scripts/refusal_latency.py [--rounds 7] [--override model=transformer]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: train.py's check of its command line, as vae_zoo.commands makes it; and the same after the training stack's imports
OURS = "import vae_zoo.commands; vae_zoo.commands.refuse_uncomposable('train')"
BASELINE = f"import vae_zoo.cli; {OURS}"


def seconds(program: str, override: str) -> float:
    """Wall-clock seconds of ``python -c program override``, which must be refused (exit status 2)."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", program, override], cwd=ROOT, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 2:
        raise SystemExit(
            f"{override!r} was not refused (exit status {result.returncode}): {result.stderr[-500:]}"
        )
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--override", default="model=transformer", help="an override that does not compose")
    args = parser.parse_args()
    ours, baseline = [], []
    for _ in range(args.rounds):
        ours.append(seconds(OURS, args.override))
        baseline.append(seconds(BASELINE, args.override))
    ours_s, baseline_s = statistics.median(ours), statistics.median(baseline)
    print(f"refusing {args.override!r}, median of {args.rounds} fresh interpreters each:")
    print(f"  before importing torch and Lightning (train.py): {ours_s:.2f} s")
    print(f"  after importing them (vae_zoo.cli first):         {baseline_s:.2f} s")
    print(f"  ratio: {ours_s / baseline_s:.3f} ({baseline_s / ours_s:.1f}x sooner)")


if __name__ == "__main__":
    main()
