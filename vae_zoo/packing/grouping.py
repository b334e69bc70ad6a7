"""Which jobs of a multirun pack: those whose configs are equal but for the settings a model of a pack may
have its own of (``PER_MODEL``: its seed, the checkpoint it starts from, its optimizer's learning rate, its KL
weight or warm-up, its KL capacity or its increase, its relaxation's temperature schedule, the ELBO's free bits,
total-correlation weight, MMD weight, DIP-VAE's weights and FactorVAE's weight, the IWAE bound's ELBO weight,
the semi-supervised objective's alpha; ``PER_MODEL_NODES``: its learning-rate schedule's and early stopping's
settings) and where each job writes."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from omegaconf import OmegaConf, open_dict

from vae_zoo.packing.job import PackJob

#: settings that may differ between the models of a pack
PER_MODEL = (
    "seed",
    "data.seed",
    "init.checkpoint",
    "model.optimizer.lr",
    "objective.beta",
    "objective.alpha",
    "objective.free_bits",
    "objective.tc_weight",
    "objective.mmd_weight",
    "objective.capacity",
    "objective.dip_weight",
    "objective.dip_diagonal_weight",
    "objective.elbo_weight",
    "objective.factor_weight",
    "model.estimator.temperature",
    "callbacks.kl_warmup.steps",
    "callbacks.kl_warmup.period",
    "callbacks.capacity.capacity",
    "callbacks.capacity.steps",
    "callbacks.temperature.tau0",
    "callbacks.temperature.tau_min",
    "callbacks.temperature.rate",
)
#: config nodes whose settings, all but the class they build, may differ between the models of a pack (each
#: model's scheduler and early stopping are built from its own job's)
PER_MODEL_NODES = ("model.scheduler", "callbacks.early_stopping")
BUILT_CLASS = ("_target_", "_partial_")
#: settings every job has its own of (where it writes), never compared
PER_JOB = ("paths.output_dir", "logger", "callbacks.model_checkpoint")


def packing_key(job: PackJob) -> dict[str, Any]:
    """The job's resolved config less what may differ within a pack, its directory made a placeholder."""
    cfg = copy.deepcopy(job.cfg)
    with job.current(), open_dict(cfg):
        cfg.paths.output_dir = "<job>"
        resolved = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    for key in (*PER_MODEL, *PER_JOB):
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(resolved, parent) if parent else resolved
        if node is not None and leaf in node:
            with open_dict(node):
                del node[leaf]
    for key in PER_MODEL_NODES:
        node = OmegaConf.select(resolved, key)
        if node is not None:
            with open_dict(node):
                for leaf in [leaf for leaf in node if leaf not in BUILT_CLASS]:
                    del node[leaf]
    return OmegaConf.to_container(resolved)


def differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """The dotted keys at which two plain configs differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            d
            for key in sorted(a.keys() | b.keys())
            for d in differences(a.get(key), b.get(key), f"{prefix}{key}.")
        ]
    return [] if a == b else [prefix.rstrip(".")]


def group(keys: Sequence[dict[str, Any]], max_models: int) -> list[list[int]]:
    """Jobs in packs: each job joins the first open pack whose key equals its own, else opens one."""
    packs: list[list[int]] = []
    for n, key in enumerate(keys):
        home = next((p for p in packs if len(p) < max_models and keys[p[0]] == key), None)
        if home is None:
            packs.append([n])
        else:
            home.append(n)
    return packs


def apart(keys: Sequence[dict[str, Any]], n: int) -> str | None:
    """Why job ``n`` packs with no other job (None where one has its settings: it is alone only because the
    packs before it are full): the settings by which it differs from the job nearest to it."""
    others = [m for m in range(len(keys)) if m != n]
    if not others or any(keys[m] == keys[n] for m in others):
        return None
    nearest = min(others, key=lambda m: len(differences(keys[n], keys[m])))
    apart_in = differences(keys[n], keys[nearest])
    shown = ", ".join(apart_in[:3]) + (f" and {len(apart_in) - 3} more" if len(apart_in) > 3 else "")
    settings = ", ".join((*PER_MODEL, *(f"{key}'s settings" for key in PER_MODEL_NODES)))
    return f"it differs from job {nearest} in {shown} (the models of a pack differ only in {settings})"
