"""Composing the project's configs from Python (tests, scripts, notebooks) as ``train.py`` would."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from vae_zoo.config_groups import CONFIG_DIR
from vae_zoo.resolvers import register_resolvers


def compose_config(overrides: Sequence[str], output_dir: Path, config_name: str = "train") -> DictConfig:
    """The composed config with ``paths.output_dir`` set to ``output_dir``.

    Hydra's runtime config (choices, output dir) is registered as if Hydra had launched the run, so
    ``train(cfg)`` and ``evaluate(cfg)`` work unchanged; so are the project's resolvers.
    """
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name, overrides=list(overrides), return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        del cfg.hydra
    return cfg
