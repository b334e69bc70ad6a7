"""Shared fixtures: real data from VAE_ZOO_DATA_DIR, and configs composed as train.py composes them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra

from vae_zoo.compose import compose_config

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def data_dir() -> str:
    path = os.environ.get("VAE_ZOO_DATA_DIR")
    if not path or not (Path(path) / "MNIST" / "raw").is_dir():
        reason = "needs real MNIST: set VAE_ZOO_DATA_DIR to a folder with MNIST/raw (e.g. ../shared/data)"
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI has the data: a skip there would hide a broken setup
        pytest.skip(reason)
    return path


@pytest.fixture
def make_cfg(tmp_path, data_dir):
    """``make_cfg(*overrides)``: the train config on real data, writing into a fresh temporary run dir."""

    def make(*overrides: str, output_dir: Path | None = None, config_name: str = "train"):
        out = output_dir or tmp_path / "run"
        return compose_config([f"paths.data_dir={data_dir}", *overrides], out, config_name=config_name)

    yield make
    GlobalHydra.instance().clear()


FAST = ("eval.iw_samples=8", "eval.iw_chunk=4", "trainer.accelerator=cpu")
