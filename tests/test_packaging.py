"""``pip install .`` (not editable) ships the Hydra configs, and the installed console script trains from
any directory."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from tests.conftest import FAST, ROOT, run_command


def test_a_regular_install_trains_with_vae_zoo_train_from_another_directory(tmp_path, data_dir):
    source = tmp_path / "source"  # what an sdist holds; building there leaves the checkout untouched
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("vae_zoo", "hydra_plugins"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    site = tmp_path / "site"
    install = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--target",
        str(site),
        str(source),
    ]
    subprocess.run(install, check=True, capture_output=True, timeout=600)
    shipped = {p.relative_to(site / "vae_zoo") for p in (site / "vae_zoo" / "conf").rglob("*.yaml")}
    assert shipped == {p.relative_to(ROOT / "vae_zoo") for p in (ROOT / "vae_zoo" / "conf").rglob("*.yaml")}
    assert (
        site / "hydra_plugins" / "vae_zoo_launchers" / "packed_launcher.py"
    ).is_file()  # Hydra's plugin path

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = run_command([sys.executable, "-c", "import vae_zoo; print(vae_zoo.__file__)"], elsewhere, site)
    assert where.stdout.startswith(str(site))  # the installed copy, not this checkout
    command = [
        str(site / "bin" / "vae-zoo-train"),
        "debug=fdr",
        *FAST,
        f"paths.data_dir={data_dir}",
        "hydra.run.dir=run",
    ]
    result = run_command(command, elsewhere, site)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((elsewhere / "run" / "metrics.json").read_text())["model"] == "gaussian_vae"


def test_the_dockerfile_copies_existing_paths_and_installs_the_tested_versions():
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    copies = [line.split()[1:-1] for line in lines if line.startswith("COPY ")]
    sources = [source for sources in copies for source in sources]
    assert "constraints.txt" in sources and "vae_zoo" in sources and "hydra_plugins" in sources
    missing = [source for source in sources if not (ROOT / source).exists()]
    assert not missing, f"the Dockerfile copies paths that do not exist: {missing}"
    (install,) = [line for line in lines if line.startswith("RUN ") and "pip install" in line]
    assert "-c constraints.txt" in install


def test_the_installed_direct_dependencies_are_the_versions_in_constraints_txt():
    """CI installs with constraints.txt: each direct dependency (and extra) of vae_zoo must be pinned there,
    at the version this environment has (a dependency added to pyproject.toml without refreshing the
    constraints fails here)."""
    from importlib.metadata import PackageNotFoundError, requires, version

    from packaging.requirements import Requirement

    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, pinned = line.split("==")
            pins[name.lower().replace("_", "-")] = pinned
    direct = {Requirement(r).name.lower().replace("_", "-") for r in requires("vae_zoo")} - {"vae-zoo"}
    unpinned = sorted(direct - pins.keys())
    assert not unpinned, (
        f"not in constraints.txt: {unpinned} -- run python scripts/newest_versions.py --write"
    )
    for name in sorted(direct):
        try:
            assert version(name) == pins[name], name
        except PackageNotFoundError:
            pass  # an extra this environment did not install
