"""Run the fuzzing targets of ``tests/test_fuzzing.py`` for longer than CI does, with fresh random examples.

    python scripts/fuzz.py --examples 2000                      # every target, 2000 examples each
    python scripts/fuzz.py --targets idx_files csv_tables --examples 20000
    python scripts/fuzz.py --targets checkpoints run_directories overrides --examples 300

Each target keeps its property (``tests/fuzz_targets.py``): read, or refused in one line; no payload runs; no
file already written changes. The run is pytest on those tests with the budget raised and the seed drawn
afresh (``--seed`` repeats a run); a failing example is printed shrunk, as in CI. Hypothesis's statistics say how
many examples each target passed (fewer than asked where a target's space of inputs is exhausted).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = (
    "idx_files",
    "amat_files",
    "cifar10_batches",
    "svhn_files",
    "image_folder_caches",
    "csv_tables",
    "array_tables",
    "image_files",
    "run_configs",
    "checkpoints",
    "run_directories",
    "overrides",
    "misspelled_overrides",
    "packed_job_lists",
    "job_lists_group_into_packs",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS))
    parser.add_argument("--examples", type=int, default=1000, help="examples per target")
    parser.add_argument("--seed", type=int, default=None, help="Hypothesis's seed (default: a fresh one)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    environment = {
        **os.environ,
        "VAE_ZOO_FUZZ_EXAMPLES": str(args.examples),
        "VAE_ZOO_FUZZ_RANDOM": "1",  # fresh examples instead of CI's fixed ones
        "PYTHONPATH": str(ROOT),
    }
    tests = [f"tests/test_fuzzing.py::test_{target}" for target in args.targets]
    command = [
        *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--hypothesis-show-statistics"),
        *(f"--hypothesis-seed={seed}", *tests),
    ]
    print(f"seed {seed}: {args.examples} examples for each of {', '.join(args.targets)}", flush=True)
    result = subprocess.run(command, cwd=ROOT, env=environment, check=False)
    if result.returncode == 0:  # the statistics above count each target's passing examples
        print(f"no failure: seed {seed}, up to {args.examples} examples per target (counts above)")
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
