"""Would the newest releases break vae_zoo? The scheduled check of the pinned set in ``constraints.txt``.

In a fresh virtual environment: install ``vae_zoo[dev,joblib]`` without the constraints (so pip takes the
newest release of every dependency the registry has; the joblib extra so that its launcher stays pinned
too), print each package whose version differs from ``constraints.txt``, and run the fast tests there: the
golden numbers and legacy checkpoints (which a new torch must keep), packing (stacked parameters and their
per-model views lean on autograd's view rules, which torch 2.15 tightened), configs, training, trackers and
estimators. With ``--write``, and only if those tests pass, write that environment's versions to
``constraints.txt`` (then run ``.ci/run`` and commit it: CI installs with it). Exit status: the tests'.
Needs the MNIST files (``VAE_ZOO_DATA_DIR``), as the tests do.

    python scripts/newest_versions.py                    # report what moved and what breaks
    python scripts/newest_versions.py --write            # refresh constraints.txt if nothing breaks
    python scripts/newest_versions.py --constraints      # build the environment from constraints.txt instead
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "constraints.txt"
FAST_TESTS = [
    "tests/test_golden_numbers.py",
    "tests/test_legacy_checkpoints.py",
    "tests/test_packing.py",
    "tests/test_configs.py",
    "tests/test_training.py",
    "tests/test_trackers.py",
    "tests/test_estimators.py",
]
HEADER = """\
# The exact versions CI tested: .ci/run installs with them (pip install -e ".[dev]" -c constraints.txt).
# pyproject.toml keeps open lower bounds. Refresh: python scripts/newest_versions.py --write
"""


def pinned(text: str) -> dict[str, str]:
    """``name==version`` lines as ``{lowercase name: version}``."""
    pins = {}
    for line in text.splitlines():
        name, sep, version = line.partition("==")
        if sep and not line.startswith("#"):
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="write constraints.txt if the fast tests pass")
    parser.add_argument("--constraints", action="store_true", help="install with constraints.txt (a control)")
    parser.add_argument("--tests", nargs="*", default=FAST_TESTS, help="the tests to run")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="vae_zoo_newest_") as tmp:
        env = Path(tmp) / "venv"
        venv.create(env, with_pip=True)
        python = str(env / "bin" / "python")
        run(python, "-m", "pip", "install", "-q", "--upgrade", "pip")
        constraint = ["-c", str(CONSTRAINTS)] if args.constraints else []
        if run(python, "-m", "pip", "install", "-q", "-e", ".[dev,joblib]", *constraint).returncode:
            print("newest_versions: pip could not install vae_zoo[dev,joblib] with the newest releases")
            return 1
        frozen = subprocess.run(
            [python, "-m", "pip", "freeze", "--all", "--exclude-editable"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        frozen = "\n".join(line for line in frozen.splitlines() if not line.startswith("pip=="))
        old, new = pinned(CONSTRAINTS.read_text()), pinned(frozen)
        moved = sorted(name for name in old.keys() | new.keys() if old.get(name) != new.get(name))
        print(f"{len(moved)} packages differ from constraints.txt:")
        for name in moved:
            print(f"  {name}: {old.get(name, '-')} -> {new.get(name, '-')}")
        tests = run(python, "-m", "pytest", "-q", "-x", *args.tests)
        print(f"fast tests with these versions: {'passed' if tests.returncode == 0 else 'FAILED'}")
        if args.write and tests.returncode == 0:
            CONSTRAINTS.write_text(HEADER + frozen + "\n")
            print(f"wrote {CONSTRAINTS}: run .ci/run, then commit it")
        return tests.returncode


if __name__ == "__main__":
    sys.exit(main())
