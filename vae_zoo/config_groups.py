"""The options of a config group, read from its folder under ``vae_zoo/conf``: no name lists to extend.

A component is one ``.py`` and one ``conf/<group>/<option>.yaml`` whose ``_target_`` names it; code that
needs the valid choices of a group (a refused pairing's message, the conformance test) reads them here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

CONFIG_DIR = Path(__file__).resolve().parent / "conf"


def groups() -> list[str]:
    """The config groups: the folders of ``vae_zoo/conf``, in name order (``hydra`` and ``paths`` among them)."""
    return sorted(folder.name for folder in CONFIG_DIR.iterdir() if folder.is_dir())


def options(group: str) -> dict[str, dict[str, Any]]:
    """``{option name: its YAML as a dict}`` for every file of ``conf/<group>/``, in name order."""
    return {
        path.stem: OmegaConf.to_container(OmegaConf.load(path))
        for path in sorted((CONFIG_DIR / group).glob("*.yaml"))
    }


def option_for_target(group: str, target: str) -> str | None:
    """The one option of ``group`` whose ``_target_`` names the class ``target`` (full path or class name),
    else None (no option, or several presets of one class)."""
    name = target.rsplit(".", 1)[-1]
    found = [
        option
        for option, config in options(group).items()
        if config.get("_target_", "").rsplit(".", 1)[-1] == name
    ]
    return found[0] if len(found) == 1 else None


def option_name(group: str, component: object) -> str:
    """``group=option`` for the option whose ``_target_`` builds ``component``'s class, else its class name."""
    option = option_for_target(group, type(component).__name__)
    return f"{group}={option}" if option else type(component).__name__
