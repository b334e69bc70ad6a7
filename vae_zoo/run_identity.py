"""What a run is: its components by config-group option (for metrics.json and the sweep summary), its
overrides, and a name built from both (for the trackers' run lists)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from vae_zoo.config_groups import option_for_target

RUN_GROUPS = {
    "model": "model",
    "latent": "model.latent",
    "estimator": "model.estimator",
    "objective": "objective",
    "likelihood": "model.likelihood",
    "prior": "model.prior",
    "flow": "model.flow",
    "condition": "model.condition",
    "data": "data",
}
#: options that add nothing to the model (the family's own prior, no flow): left out of run names
UNREMARKABLE = {"prior": "standard", "flow": "none", "condition": "none"}
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
    """Which model preset, latent, estimator, objective, likelihood, prior, flow, condition and data a run used, by their
    config-group option names: the option chosen, else the one its class is built from (the likelihood the
    data's pixels chose), else the class name (a run that predates the group)."""
    if choices is None:
        choices = hydra_choices()

    def chosen(group: str, node: str) -> str:
        config = OmegaConf.select(cfg, node, default=None)  # resolved: the likelihood may be interpolated
        target = config.get("_target_", "") if isinstance(config, Mapping) else ""
        return choices.get(group) or option_for_target(group, target) or target.rsplit(".", 1)[-1]

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


def short_keys(keys: list[str]) -> dict[str, str]:
    """Each dotted key by its shortest ending that no other key shares: ``model.optimizer.lr`` -> ``lr``,
    but ``model.encoder.hidden`` and ``model.decoder.hidden`` -> ``encoder.hidden``, ``decoder.hidden``."""
    short = {}
    for key in keys:
        parts = key.split(".")
        for length in range(1, len(parts) + 1):
            ending = ".".join(parts[-length:])
            if not any(other != key and (other == ending or other.endswith("." + ending)) for other in keys):
                break
        short[key] = ending
    return short


def run_name(likelihood: Mapping[str, Any] | None = None) -> str:
    """``model,latent,estimator,objective,likelihood,data`` then the descriptive overrides by the shortest
    key ending that tells them apart, e.g.
    ``gaussian_vae,normal,pathwise,elbo,bernoulli,mnist,lr=3e-4,encoder.hidden=[64],decoder.hidden=[64]``;
    characters a file name cannot hold become ``_``. The likelihood is the chosen option, else the one the
    ``likelihood`` config (the run's ``model.likelihood``, which the data's pixels chose) is built from. The
    OmegaConf resolver ``${vae_zoo.run_name:${model.likelihood}}``."""
    choices = dict(hydra_choices())
    if not choices.get("likelihood") and likelihood is not None:
        choices["likelihood"] = option_for_target("likelihood", likelihood.get("_target_", ""))
    parts = [
        choices[group]
        for group in RUN_GROUPS
        if choices.get(group) and choices[group] != UNREMARKABLE.get(group)
    ]
    overrides = descriptive_overrides()
    short = short_keys(list(overrides))
    parts += [f"{short[key]}={value}" for key, value in overrides.items()]
    name = re.sub(r"[^\w.,=+\-]", "_", ",".join(parts) or "run")
    return name[:NAME_LENGTH].rstrip(",")
