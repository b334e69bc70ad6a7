"""The Python API: a trained model from a checkpoint or run directory, and training with the command line's
overrides.

    import vae_zoo
    run = vae_zoo.train("model=gamma_vae", "trainer.max_epochs=1")   # as python train.py model=gamma_vae ...
    model = vae_zoo.load(run.directory)                              # the ProbabilisticModel, in eval mode
    q = model.encode(x); images = model.sample(16); log_px = model.log_likelihood(x, k=1000)
    runs = vae_zoo.train_packed(["seed=0"], ["seed=1"], common=["trainer.max_epochs=1"])  # as one pack
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
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
    _write_hydra_files(directory, cfg, overrides)
    return TrainedRun(directory, metrics)


def train_packed(
    *jobs: Sequence[str],
    common: Sequence[str] = (),
    directory: str | Path | None = None,
    max_models: int = 16,
) -> list[TrainedRun | VaeZooError]:
    """Train ``jobs`` (each a sequence of overrides, after ``common``) as ``python train.py -m
    hydra/launcher=packed`` trains a sweep's: the jobs whose configs differ only in what packs (seeds, learning
    rates, beta, ...) train together, up to ``max_models`` to a pack, each into its own ordinary run directory
    ``directory/<n>`` (default ``outputs/<date>/<time>/<n>``). For each job its ``TrainedRun``, or the
    ``VaeZooError`` of the one line that kept it from training or stopped it (the others train); a job whose
    component has no packed form trains alone. An override Hydra cannot apply raises its line, before any
    training."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.errors import HydraException

    from vae_zoo.compose import compose_config
    from vae_zoo.composition_errors import composition_error
    from vae_zoo.errors import NotPackable
    from vae_zoo.packing.grouping import group, packing_key
    from vae_zoo.packing.job import PackJob
    from vae_zoo.packing.train_pack import train_pack

    if not isinstance(max_models, int) or max_models < 1:
        raise VaeZooError(f"max_models={max_models} must be an integer >= 1")
    directory = Path(directory or Path("outputs") / datetime.now().strftime("%Y-%m-%d/%H-%M-%S"))
    finished = [
        str(directory / str(n)) for n in range(len(jobs)) if (directory / str(n) / "metrics.json").is_file()
    ]
    if finished:
        raise VaeZooError(
            f"{finished[0]} already holds a finished run (metrics.json) -- choose another directory"
        )
    packed = []
    for n, overrides in enumerate(jobs):
        try:
            cfg = compose_config([*common, *overrides], directory / str(n))
        except HydraException as error:
            raise composition_error(error) from None
        packed.append(PackJob(cfg, copy.deepcopy(HydraConfig.instance().cfg)))
    results: list[TrainedRun | VaeZooError] = []
    for members in group([packing_key(job) for job in packed], max_models):
        for n, result in zip(members, train_pack([packed[n] for n in members]), strict=True):
            if isinstance(result, NotPackable):  # trains alone, as the packed launcher runs it
                try:
                    result = train(*common, *jobs[n], directory=directory / str(n)).metrics
                except VaeZooError as error:
                    result = error
            if not isinstance(result, VaeZooError):
                _write_hydra_files(directory / str(n), packed[n].cfg, [*common, *jobs[n]])
                result = TrainedRun(directory / str(n), result)
            results.append((n, result))
    return [result for _, result in sorted(results, key=lambda pair: pair[0])]


def _write_hydra_files(directory: Path, cfg: Any, overrides: Sequence[str]) -> None:
    """The run directory's ``.hydra/config.yaml`` and ``overrides.yaml``, as Hydra writes them."""
    (directory / ".hydra").mkdir(parents=True, exist_ok=True)
    (directory / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    (directory / ".hydra" / "overrides.yaml").write_text(OmegaConf.to_yaml(list(overrides)))
