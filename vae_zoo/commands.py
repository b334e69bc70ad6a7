"""The commands ``python train.py``, ``eval.py`` and ``sample.py`` (installed as ``vae-zoo-train``,
``vae-zoo-eval`` and ``vae-zoo-sample``).

Only a command line that trains, evaluates or samples imports ``vae_zoo.cli`` and its 5 to 6 s of torch and
Lightning imports:

- a command line Hydra cannot compose -- a mistyped key or option, an override that does not parse -- is
  refused in one line (``composition_errors``), with ``--cfg``, ``--info`` or ``--help`` too;
- Hydra's own answers -- ``--help``, ``--hydra-help``, ``--cfg``, ``--info`` and shell completion, which print
  and run no task -- are Hydra's as before, composed from the same config directory without those imports
  (``--resolve`` excepted: the configs' resolvers ask torch what the device supports).

Both in 0.3 to 1.3 s rather than 5 to 6 (``scripts/command_latency.py``).
"""

from __future__ import annotations

import importlib

import hydra

from vae_zoo.composition_errors import answered_by_hydra, command_line, refuse_uncomposable
from vae_zoo.config_groups import CONFIG_DIR


def train_main() -> None:
    """``python train.py``: fit, validate and test (``vae_zoo.cli.train``)."""
    run_command("train")


def eval_main() -> None:
    """``python eval.py``: a checkpoint's test metrics (``vae_zoo.cli.evaluate``)."""
    run_command("eval")


def sample_main() -> None:
    """``python sample.py``: a checkpoint's image grids (``vae_zoo.cli.sample``)."""
    run_command("sample")


def run_command(config_name: str) -> None:
    """Hydra's answer to this command line where it prints one without running; else the command's task
    (``vae_zoo.cli.<config_name>_task``), once its command line composes."""
    refuse_uncomposable(config_name)
    args = command_line()
    if answered_by_hydra(args) and not args.resolve:
        hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name=config_name)(
            lambda cfg: cli_task(config_name)(cfg)  # Hydra calls no task for these flags
        )()
        return
    cli_task(config_name)()


def cli_task(config_name: str):
    """``vae_zoo.cli``'s Hydra task of the command, imported with torch and Lightning."""
    return getattr(importlib.import_module("vae_zoo.cli"), f"{config_name}_task")
