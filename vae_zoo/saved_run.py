"""A trained run read back from one checkpoint file, for ``eval.py`` and ``sample.py``.

Every checkpoint a training run writes carries the run's composed config and its config-group choices
(``RunConfigInCheckpoint``, under ``checkpoint["vae_zoo_run"]``), beside the model's hyperparameters
(its component configs, the input shape and the kind of pixels it was trained on). So a checkpoint
copied out of its run directory rebuilds its model (from the hyperparameters: no data needed) and its
data (from the carried data config). Where the run directory is still there, its ``.hydra/config.yaml``
is used instead; a ``data=`` choice on the command line replaces the run's data either way.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import yaml
from omegaconf import DictConfig, OmegaConf, open_dict

from vae_zoo.checkpoint_io import read_lightning_checkpoint, refuse_nonfinite_weights
from vae_zoo.components import build
from vae_zoo.data.datamodule import serve_labels
from vae_zoo.errors import ConfigError, VaeZooError, cause_of_type
from vae_zoo.run_identity import run_identity

KEY = "vae_zoo_run"
#: what the invocation of eval.py / sample.py sets over the run's own config (merged into it, with ``ckpt_path``
#: the checkpoint read); its ``data`` replaces the run's (``data=<option>``) or changes its settings
#: (``data.<key>=...``)
INVOCATION_KEYS = ("paths", "trainer", "eval", "seed")


class RunConfigInCheckpoint(pl.Callback):
    """Puts ``{"config": <the composed config, unresolved>, "choices": <group options>}`` into every
    checkpoint (plain values: checkpoints stay loadable weights-only)."""

    def __init__(self, config: dict[str, Any], choices: dict[str, Any]) -> None:
        self.saved = {"config": config, "choices": dict(choices)}

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict
    ) -> None:
        checkpoint[KEY] = self.saved


def read_config_file(path: Path) -> DictConfig:
    """A YAML config read with YAML's safe loader (OmegaConf's): a ``!!python`` tag is one line, not a call."""
    try:
        config = OmegaConf.load(path)
    except (yaml.YAMLError, ValueError, OSError) as error:
        reason = (str(error) or type(error).__name__).splitlines()[0]
        raise VaeZooError(
            f"{path} is not a plain YAML config ({reason}): configs are read with YAML's safe loader, which "
            "builds no Python objects -- restore the run's config or use the checkpoint alone"
        ) from None
    if not isinstance(config, DictConfig):
        raise VaeZooError(
            f"{path} is not a run config (a YAML list, not a mapping of settings) -- restore the run's config or "
            "use the checkpoint alone"
        )
    return config


@dataclass
class SavedRun:
    """A checkpoint and the run it came from: ``config`` is the run's config with this invocation's
    ``INVOCATION_KEYS`` over it; ``run_config`` and ``choices`` are the run's own."""

    path: Path
    checkpoint: dict[str, Any]
    run_config: DictConfig
    choices: dict[str, Any]
    config: DictConfig

    def datamodule(self) -> pl.LightningDataModule:
        with answered_in_one_line(self.path, "its run config does not build a data module"):
            return build(
                OmegaConf.to_container(self.config.data, resolve=True), pl.LightningDataModule, "data"
            )

    def model(self, datamodule: pl.LightningDataModule | None = None) -> pl.LightningModule:
        """The model of the checkpoint's hyperparameters with this invocation's ``eval`` settings, its
        weights loaded; checked against ``datamodule``'s images and pixels where one is given (which then
        serves labels for a conditional model)."""
        with answered_in_one_line(self.path, "its hyper_parameters do not build a model"):
            model = self._model(datamodule)
        try:
            model.load_state_dict(self.checkpoint["state_dict"])
        except (RuntimeError, TypeError, ValueError) as error:
            reason = str(error).replace("\n", " ").replace("\t", "")[:300]
            raise VaeZooError(
                f"{self.path} holds weights that do not fit its own model ({reason}) -- the file was changed or "
                "damaged: use an unchanged checkpoint"
            ) from None
        refuse_nonfinite_weights(
            self.checkpoint["state_dict"],
            str(self.path),
            ": the run diverged before writing it, or the file was changed -- use an earlier checkpoint of the run",
        )
        return model

    def _model(self, datamodule: pl.LightningDataModule | None) -> pl.LightningModule:
        hparams = self.checkpoint.get("hyper_parameters") or {}
        if not isinstance(hparams, dict):
            raise VaeZooError(f"{self.path} holds hyper_parameters that are not a mapping of settings")
        hparams = dict(hparams)
        if datamodule is not None:
            shape = tuple(datamodule.input_shape)
            if tuple(hparams.get("input_shape", shape)) != shape:
                raise ConfigError(
                    f"the data serves images of shape {shape}, but {self.path.name}'s model was trained on "
                    f"{tuple(hparams['input_shape'])} -- evaluate it on data of that shape"
                )
            hparams["pixels"] = datamodule.pixels
            if hparams.get("condition"):
                serve_labels(datamodule)
        settings = {"iw_samples": self.config.eval.iw_samples, "iw_chunk": self.config.eval.iw_chunk}
        target = {"_target_": self.run_config.model._target_}
        return build({**target, **hparams, **settings}, pl.LightningModule, "model")


@contextlib.contextmanager
def answered_in_one_line(path: Path, what: str) -> Iterator[None]:
    """Inside: a failure caused by what the checkpoint ``path`` (or its run config) holds is one line naming
    the file: a ``VaeZooError`` with the file's name before its own line, anything else with ``what`` and the
    reason (the file's content is the user's input: a changed type, a key removed, an interpolation no
    resolver serves)."""
    try:
        yield
    except Exception as error:  # noqa: BLE001 -- what an untrusted file makes fail, in one line
        cause = cause_of_type(error, VaeZooError)
        if cause is not None:
            message = str(cause) if path.name in str(cause) else f"{path.name}: {cause}"
            raise type(cause)(message) from None
        reason = (str(error) or type(error).__name__).splitlines()[0][:300]
        raise VaeZooError(
            f"{path}: {what} ({type(error).__name__}: {reason}) -- the file or its run config was changed or "
            "damaged: use an unchanged checkpoint or restore the run's config"
        ) from None


def tested_checkpoint(metrics: Path) -> Path:
    """The checkpoint a run's ``metrics.json`` says its test metrics came from (an empty path where it names
    none); one line where the file is not the JSON mapping ``train.py`` writes."""
    fix = "restore it, or pass the .ckpt file itself"
    try:
        recorded = json.loads(metrics.read_text())
    except (ValueError, OSError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        reason = (str(error) or type(error).__name__).splitlines()[0]
        raise VaeZooError(f"{metrics} cannot be read as JSON ({reason}): {fix}") from None
    tested = recorded.get("checkpoint") if isinstance(recorded, dict) else None
    if not isinstance(recorded, dict) or not isinstance(tested, str | None):
        raise VaeZooError(f"{metrics} is not a mapping whose checkpoint is a path, as train.py writes: {fix}")
    return Path(tested or "")


def checkpoint_of(path: str | Path) -> Path:
    """The checkpoint ``path`` names: a ``.ckpt`` file, or in a run directory the checkpoint its test
    metrics came from (``metrics.json``), else ``checkpoints/last.ckpt``. One line where there is none."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise VaeZooError(f"{path} does not exist -- pass a .ckpt file or a run directory")
    metrics = path / "metrics.json"
    if metrics.is_file():
        tested = tested_checkpoint(metrics)
        for candidate in (tested, path / "checkpoints" / tested.name):
            if tested.name and candidate.is_file():
                return candidate
    last = path / "checkpoints" / "last.ckpt"
    if last.is_file():
        return last
    raise VaeZooError(
        f"{path} holds no checkpoint (no checkpoints/last.ckpt) -- pass a run directory or a .ckpt file"
    )


def read_saved_run(cfg: DictConfig, script: str, resolve: bool = True) -> SavedRun:
    """The run ``cfg.ckpt_path`` belongs to (a checkpoint, or a run directory: ``checkpoint_of``); one line when
    it is not given, the checkpoint is missing or unreadable, or neither it nor a run directory holds the run's
    config, or (``resolve``: eval.py's and sample.py's reading) that config with this invocation's settings
    does not resolve."""
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise VaeZooError(
            f"{script} needs a trained model: ckpt_path=<run directory> or ckpt_path=<run>/checkpoints/<name>.ckpt"
        )
    path = checkpoint_of(cfg.ckpt_path)
    checkpoint = read_lightning_checkpoint(path)
    run_dir_config = path.resolve().parent.parent / ".hydra" / "config.yaml"
    with answered_in_one_line(path, "its run config cannot be read"):
        if run_dir_config.is_file():
            run_config = read_config_file(run_dir_config)
            hydra_file = run_dir_config.with_name("hydra.yaml")
            choices = read_config_file(hydra_file).hydra.runtime.choices if hydra_file.is_file() else {}
        elif isinstance(checkpoint.get(KEY), dict):
            run_config = OmegaConf.create(checkpoint[KEY]["config"])
            choices = checkpoint[KEY].get("choices", {})
        else:
            raise VaeZooError(
                f"no run config at {run_dir_config}, and {path.name} carries none (written before checkpoints "
                f"held their run's config): {script} needs the run directory the checkpoint came from"
            )
        if not isinstance(run_config, DictConfig) or not isinstance(run_config.get("model"), DictConfig):
            raise VaeZooError(f"{path}: its run config is not a mapping of settings with a model")
        invocation = {key: cfg[key] for key in INVOCATION_KEYS if key in cfg}
        config = OmegaConf.merge(run_config, {**invocation, "ckpt_path": str(path)})
        data = cfg.get("data") or {}
        if "_target_" in data:  # data=<option>: another dataset
            with open_dict(config):
                config.data = data
        else:  # data.<key>=...: settings of the run's own (the unset ones are null)
            config = OmegaConf.merge(config, {"data": {k: v for k, v in data.items() if v is not None}})
        choices = dict(choices)
        if resolve:  # every interpolation, and what eval.py and sample.py report of the run (its identity)
            OmegaConf.to_container(config, resolve=True)
            run_identity(run_config, choices)
    return SavedRun(path, checkpoint, run_config, choices, config)
