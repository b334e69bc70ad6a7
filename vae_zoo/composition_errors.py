"""Hydra's refusals of a command line -- a key the config lacks, an option its group lacks, an override that
does not parse or merge -- as the one line every other refusal gets, naming the nearest key or option where a
name was mistyped:

    error: model.latent.dimm: no such key in model.latent -- did you mean model.latent.dim?
    error: model=gausian_vae: model has no option 'gausian_vae' -- did you mean model=gaussian_vae? (its options: ...)

``train.py``, ``eval.py`` and ``sample.py`` compose their command line's config before Hydra does
(``refuse_uncomposable``); a multirun's jobs are checked by ``hydra/sweeper=checked`` before the first one
runs; ``vae_zoo.train()`` raises the same line as a ``ConfigError``.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Iterable, Sequence

from hydra import initialize_config_dir
from hydra._internal.utils import get_args_parser  # the parser hydra.main reads the command line with
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from vae_zoo.config_groups import CONFIG_DIR, groups
from vae_zoo.errors import ConfigError


def nearest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest in spelling to ``name`` (difflib's ratio >= 0.6), else None."""
    found = difflib.get_close_matches(name, list(candidates), n=1)
    return found[0] if found else None


def composition_error(error: HydraException) -> ConfigError:
    """``error`` as one line: the override it refused, what is wrong, and the nearest name where one exists."""
    cause = error.__cause__
    if isinstance(error, MissingConfigException) and "/" in (error.missing_cfg_file or ""):
        return _missing_option(error.missing_cfg_file, error.options or [])
    if isinstance(cause, ConfigAttributeError | ConfigKeyError) and "not in struct" in str(cause):
        return _missing_key(cause.full_key, cause.parent_node)
    if isinstance(error, OverrideParseException):
        first = error.message.strip().splitlines()[0]
        return ConfigError(f"{error.override}: cannot be parsed ({first}) -- see {_grammar(error)}")
    lines = str(error).split("Config search path:")[0].splitlines()
    if isinstance(cause, OmegaConfBaseException):
        lines.append(str(cause).splitlines()[0])
    return ConfigError("; ".join(line.strip().rstrip(".") for line in lines if line.strip()))


def _missing_option(missing: str, choices: Sequence[str]) -> ConfigError:
    group, _, option = missing.rpartition("/")
    listed = ", ".join(choices)
    guess = nearest(option, choices)
    advice = f"did you mean {group}={guess}? (its options: {listed})" if guess else f"choose one of: {listed}"
    homes = sorted(folder.name for folder in CONFIG_DIR.iterdir() if (folder / f"{option}.yaml").is_file())
    other = f" ({option} is an option of {' and '.join(homes)}: {homes[0]}={option})" if homes else ""
    return ConfigError(f"{group}={option}: {group} has no option {option!r}{other} -- {advice}")


def _missing_key(full_key: str, parent: object) -> ConfigError:
    where, _, name = full_key.rpartition(".")
    keys = (
        [str(key) for key in parent if not str(key).startswith("_")] if isinstance(parent, DictConfig) else []
    )
    if not where:  # the top level: its keys and the config groups chosen with group=option, each once
        keys = list(dict.fromkeys([*keys, *groups()]))
    guess = nearest(name, keys)
    if guess:
        return ConfigError(
            f"{full_key}: no such key in {where or 'the config'} -- did you mean {where + '.' if where else ''}{guess}?"
        )
    return ConfigError(
        f"{full_key}: no such key in {where or 'the config'} (its keys: {', '.join(keys)}) -- check the name; a "
        f"key the config lacks is added with a leading +: +{full_key}=<value>"
    )


def _grammar(error: OverrideParseException) -> str:
    links = [word for word in error.message.split() if word.startswith("https://")]
    return links[0] if links else "Hydra's override grammar"


def command_line(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (``sys.argv[1:]``) as ``hydra.main`` reads it."""
    return get_args_parser().parse_args(sys.argv[1:] if argv is None else list(argv))


def answered_by_hydra(args: argparse.Namespace) -> bool:
    """``--help``, ``--hydra-help``, ``--cfg``, ``--info`` or shell completion: Hydra prints its answer and runs no
    task."""
    return any((args.help, args.hydra_help, args.cfg, args.info, args.shell_completion))


def refuse_uncomposable(config_name: str, argv: Sequence[str] | None = None) -> None:
    """Composes the config of this command line (``sys.argv[1:]``) as Hydra is about to -- in a multirun,
    the sweep's primary config; its jobs are the sweeper's -- and where Hydra would refuse it, prints
    ``error: <one line>`` and exits with status 2; ``--help``, ``--cfg`` and ``--info`` compose it too. Left to
    Hydra: shell completion, another config directory or name, and ``HYDRA_FULL_ERROR=1`` (its whole stack
    trace)."""
    args = command_line(argv)
    elsewhere = (args.experimental_rerun, args.config_path, args.config_dir, args.config_name)
    if args.shell_completion or any(elsewhere) or os.environ.get("HYDRA_FULL_ERROR") == "1":
        return
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        mode = RunMode.MULTIRUN if args.multirun else RunMode.RUN
        try:
            loader.load_configuration(config_name, args.overrides, run_mode=mode)
            return
        except HydraException as error:
            refusal = error
        if mode == RunMode.RUN and _configured_mode(loader, config_name, args.overrides) == RunMode.MULTIRUN:
            try:  # a config that sets hydra.mode=MULTIRUN (hparams_search=optuna) sweeps without -m
                loader.load_configuration(config_name, args.overrides, run_mode=RunMode.MULTIRUN)
                return
            except HydraException as error:
                refusal = error
    print(f"error: {composition_error(refusal)}", file=sys.stderr)
    sys.exit(2)


def _configured_mode(loader, config_name: str, overrides: Sequence[str]) -> RunMode | None:
    """``hydra.mode`` of the config, read as Hydra's ``get_mode`` reads it (None where it does not compose)."""
    try:
        swept = loader.load_configuration(
            config_name, list(overrides), run_mode=RunMode.MULTIRUN, validate_sweep_overrides=False
        )
    except HydraException:
        return None
    return swept.hydra.mode
