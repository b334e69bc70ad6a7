"""OmegaConf resolvers used by the configs: the precision a device supports, a run's name, absolute paths,
the likelihood made for the data's pixels."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import OmegaConf

from vae_zoo.likelihood_choice import likelihood_for_data
from vae_zoo.run_identity import run_name


def gpu_precision() -> str:
    """``bf16-mixed`` on GPUs that support bfloat16 (Ampere and later), else ``16-mixed``."""
    return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "16-mixed"


def auto_precision() -> str:
    """Mixed precision on a GPU, full 32-bit on the CPU."""
    return gpu_precision() if torch.cuda.is_available() else "32-true"


def absolute_path(path: str) -> str:
    """``path`` made absolute against the working directory of the start (MLflow stores such paths)."""
    return str(Path(path).resolve())


def register_resolvers() -> None:
    resolvers = {
        "gpu_precision": gpu_precision,
        "auto_precision": auto_precision,
        "run_name": run_name,
        "absolute_path": absolute_path,
        "likelihood_for_data": likelihood_for_data,
    }
    for name, fn in resolvers.items():
        OmegaConf.register_new_resolver(f"vae_zoo.{name}", fn, replace=True)
