"""Printing the composed config as a rich tree, one branch per top-level group."""

from __future__ import annotations

from pathlib import Path

import rich
import rich.syntax
import rich.tree
from omegaconf import DictConfig, OmegaConf

FIRST = ("data", "model", "trainer", "callbacks", "logger", "paths", "eval")


def print_config_tree(cfg: DictConfig, save_to: Path | None = None) -> None:
    """Print ``cfg`` (resolved) to the terminal and, if given, save the same text to ``save_to``."""
    tree = rich.tree.Tree("CONFIG", style="bold")
    keys = [k for k in FIRST if k in cfg] + [k for k in cfg if k not in FIRST]
    for key in keys:
        node = cfg[key]
        text = OmegaConf.to_yaml(node, resolve=True) if isinstance(node, DictConfig) else str(node)
        tree.add(str(key), style="bold").add(rich.syntax.Syntax(text, "yaml"))
    rich.print(tree)
    if save_to is not None:
        save_to.parent.mkdir(parents=True, exist_ok=True)
        with open(save_to, "w") as handle:
            rich.print(tree, file=handle)
