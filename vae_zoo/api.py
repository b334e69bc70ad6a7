"""The Python API: a trained model from a checkpoint or run directory, and training with the command line's
overrides.

    import vae_zoo
    run = vae_zoo.train("model=gamma_vae", "trainer.max_epochs=1")   # as python train.py model=gamma_vae ...
    model = vae_zoo.load(run.directory)                              # the ProbabilisticModel, in eval mode
    q = model.encode(x); images = model.sample(16); log_px = model.log_likelihood(x, k=1000)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from vae_zoo.errors import VaeZooError
from vae_zoo.probabilistic_model import ProbabilisticModel


@dataclass
class TrainedRun:
    """A finished training run: its directory (``.hydra/``, ``checkpoints/``, ``metrics.json``, TensorBoard
    logs) and the metrics it wrote."""

    directory: Path
    metrics: dict[str, Any]


def load(path: str | Path) -> ProbabilisticModel:
    """The probabilistic model of a checkpoint or a run directory, its weights loaded, in eval mode on the
    CPU (``.to(device)`` moves it). A file that is no checkpoint, or a directory without one: one line."""
    from vae_zoo.saved_run import read_saved_run

    run = read_saved_run(OmegaConf.create({"ckpt_path": str(path)}), "vae_zoo.load", resolve=False)
    return run.model().model.eval()


def train(*overrides: str, directory: str | Path | None = None) -> TrainedRun:
    """Train as ``python train.py <overrides>`` does (the same config groups and overrides, Hydra's compose
    API), into ``directory`` (default ``outputs/<date>/<time>``); the run directory and its metrics. What the
    command line answers with one line (an override Hydra cannot apply, a pairing that does not train, a
    directory that holds a finished run) raises ``VaeZooError`` with that line, and nothing is written."""
    from hydra.errors import HydraException

    from vae_zoo.cli import train as train_config
    from vae_zoo.cli import user_error
    from vae_zoo.compose import compose_config
    from vae_zoo.composition_errors import composition_error

    directory = Path(directory or Path("outputs") / datetime.now().strftime("%Y-%m-%d/%H-%M-%S"))
    if (directory / "metrics.json").is_file():
        raise VaeZooError(
            f"{directory} already holds a finished run (metrics.json) -- choose another directory"
        )
    try:
        cfg = compose_config(list(overrides), directory)
    except HydraException as error:
        raise composition_error(error) from None
    try:
        metrics = train_config(cfg)
    except Exception as error:
        cause = user_error(error)
        if cause is None:
            raise
        raise cause from None
    (directory / ".hydra").mkdir(parents=True, exist_ok=True)
    (directory / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    (directory / ".hydra" / "overrides.yaml").write_text(OmegaConf.to_yaml(list(overrides)))
    return TrainedRun(directory, metrics)
