"""How soon train.py answers a command line that runs nothing: a refused override (one line, exit status 2;
only the check runs, so an override that composes is reported, not trained), ``--cfg job`` and ``--help``
(Hydra's answers, exit status 0). Each is timed as train.py runs it (``vae_zoo.commands``,
before torch and Lightning are imported) against the same with ``vae_zoo.cli`` imported first (what every run
imports, and what these answers waited for before), each in a fresh interpreter, alternated, and the ratio of
the medians is printed per command line.

    python scripts/command_latency.py [--rounds 7] [--override model=transformer]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: train.py's check of its command line, which runs nothing; and train.py's entry point, as ``python train.py``
#: calls it; each timed as it is and after the training stack's imports (``vae_zoo.cli`` first)
CHECK = "import vae_zoo.commands; vae_zoo.commands.refuse_uncomposable('train')"
ENTRY = "import sys; sys.argv[0] = 'train.py'; import vae_zoo.commands; vae_zoo.commands.train_main()"
AFTER_THE_IMPORTS = "import vae_zoo.cli; "


def seconds(program: str, argv: list[str], status: int) -> float:
    """Wall-clock seconds of ``python -c program *argv``, which must exit with ``status``."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", program, *argv], cwd=ROOT, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - start
    if result.returncode != status:
        raise SystemExit(
            f"{' '.join(argv)!r} exited with status {result.returncode}, not {status}: {result.stderr[-500:]}"
        )
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--override", default="model=transformer", help="an override that does not compose")
    args = parser.parse_args()
    command_lines = [(CHECK, [args.override], 2), (ENTRY, ["--cfg", "job"], 0), (ENTRY, ["--help"], 0)]
    print(
        f"train.py, median of {args.rounds} fresh interpreters each; before importing torch and Lightning "
        "(train.py) against after (vae_zoo.cli first):"
    )
    for program, argv, status in command_lines:
        ours, baseline = [], []
        for _ in range(args.rounds):
            ours.append(seconds(program, argv, status))
            baseline.append(seconds(AFTER_THE_IMPORTS + program, argv, status))
        ours_s, baseline_s = statistics.median(ours), statistics.median(baseline)
        print(
            f"  {' '.join(argv):20s} {ours_s:.2f} s against {baseline_s:.2f} s, ratio {ours_s / baseline_s:.3f} "
            f"({baseline_s / ours_s:.1f}x sooner)"
        )


if __name__ == "__main__":
    main()
