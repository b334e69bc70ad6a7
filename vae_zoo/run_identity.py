"""What a run is: its components by config-group option (for metrics.json and the sweep summary), its
overrides, and a name built from both (for the trackers' run lists)."""

from __future__ import annotations

import re
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

RUN_GROUPS = {
    "model": "model",
    "latent": "model.latent",
    "estimator": "model.estimator",
    "objective": "objective",
    "likelihood": "model.likelihood",
    "data": "data",
}
# where and how long a run goes, not what it trains
NOT_DESCRIPTIVE = (
    "hydra.",
    "paths.",
    "logger",
    "ckpt_path",
    "trainer.limit_",
    "trainer.accelerator",
    "eval.",
)
NAME_LENGTH = 200  # a directory name (TensorBoard's run) must stay under the file systems' 255 bytes


def hydra_choices() -> dict[str, Any]:
    """The config-group options Hydra composed this run from (none outside a Hydra run)."""
    return HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}


def run_identity(cfg: DictConfig, choices: dict[str, Any] | None = None) -> dict[str, Any]:
    """Which model preset, latent, estimator, objective, likelihood and data a run used, by their
    config-group option names (a class name where the run predates the group)."""
    if choices is None:
        choices = hydra_choices()

    def chosen(group: str, node: str) -> str:
        target = OmegaConf.select(cfg, f"{node}._target_", default="")
        return choices.get(group) or target.rsplit(".", 1)[-1]

    identity = {group: chosen(group, node) for group, node in RUN_GROUPS.items()}
    return {**identity, "seed": cfg.get("seed"), "iw_samples": cfg.eval.iw_samples}


def descriptive_overrides() -> dict[str, str]:
    """The command line's overrides (``key: value``) that change what trains, in the order given: not the
    components already named by ``run_identity`` and not where the run writes."""
    if not HydraConfig.initialized():
        return {}
    overrides = {}
    for override in HydraConfig.get().overrides.task:
        key, _, value = override.partition("=")
        key = key.lstrip("+~")
        if key not in RUN_GROUPS and not key.startswith(NOT_DESCRIPTIVE):
            overrides[key] = value
    return overrides


def run_name() -> str:
    """``model,latent,estimator,objective,likelihood,data`` then the descriptive overrides by their last
    key, e.g. ``gaussian_vae,normal,pathwise,elbo,bernoulli,mnist,lr=3e-4,seed=1``; characters a file name
    cannot hold become ``_``. The OmegaConf resolver ``${vae_zoo.run_name:}``."""
    choices = hydra_choices()
    parts = [choices[group] for group in RUN_GROUPS if choices.get(group)]
    parts += [f"{key.rsplit('.', 1)[-1]}={value}" for key, value in descriptive_overrides().items()]
    name = re.sub(r"[^\w.,=+\-]", "_", ",".join(parts) or "run")
    return name[:NAME_LENGTH].rstrip(",")
