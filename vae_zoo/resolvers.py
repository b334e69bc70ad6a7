"""OmegaConf resolvers used by the configs: the precision a device supports."""

from __future__ import annotations

import torch
from omegaconf import OmegaConf


def gpu_precision() -> str:
    """``bf16-mixed`` on GPUs that support bfloat16 (Ampere and later), else ``16-mixed``."""
    return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "16-mixed"


def auto_precision() -> str:
    """Mixed precision on a GPU, full 32-bit on the CPU."""
    return gpu_precision() if torch.cuda.is_available() else "32-true"


def register_resolvers() -> None:
    for name, fn in {"gpu_precision": gpu_precision, "auto_precision": auto_precision}.items():
        OmegaConf.register_new_resolver(f"vae_zoo.{name}", fn, replace=True)
