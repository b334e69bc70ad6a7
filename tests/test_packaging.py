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
    shutil.copytree(ROOT / "vae_zoo", source / "vae_zoo", ignore=shutil.ignore_patterns("__pycache__"))
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
