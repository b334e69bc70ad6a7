"""A run that starts from another run's weights (``init.checkpoint``), training all of them or ``p(z)``'s alone
(``init.train=prior``: the prior fitted to a trained model's fixed posterior, as VQ-VAE's PixelCNN over the codes
is fitted after the model in van den Oord et al. 2017).

Unlike ``ckpt_path``, which resumes a run (its optimizer, its step, its epoch), this starts a new one: a fresh
optimizer and schedule from step 0, only the weights taken. Every tensor of the model outside the prior must be
in the checkpoint with its shape -- the same architecture -- and the prior's are taken where the checkpoint holds
them at the same shapes (unless ``init.fresh_prior``); a prior of another shape (a larger PixelCNN) starts from its
own initial weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from vae_zoo.checkpoint_io import read_lightning_checkpoint, refuse_nonfinite_weights
from vae_zoo.errors import ConfigError, VaeZooError
from vae_zoo.models.vae import VAE
from vae_zoo.setting_types import check_settings


@dataclass(frozen=True)
class InitialWeights:
    """The ``init`` settings: the checkpoint to start from, what trains, and whether the prior starts afresh."""

    checkpoint: str | None = None
    train: Literal["all", "prior"] = "all"
    fresh_prior: bool = False


def start_from_checkpoint(init: Mapping[str, Any] | None, model: VAE) -> str | None:
    """Load ``init.checkpoint``'s weights into ``model`` and, with ``init.train=prior``, train its prior alone;
    returns the line that says what was taken (None without a checkpoint)."""
    if not isinstance(init, Mapping | None):
        raise ConfigError(f"init={init!r} is not a group of settings -- set init.checkpoint=<a .ckpt file>")
    check_settings(InitialWeights, init or {}, "init")
    init = InitialWeights(**(init or {}))
    if init.checkpoint is None:
        if init.train == "prior":
            raise ConfigError(
                "init.train=prior fits the prior of a trained model -- set init.checkpoint=<its .ckpt file>"
            )
        return None
    path = init.checkpoint
    if not Path(path).is_file():
        raise VaeZooError(
            f"init.checkpoint={path} does not exist -- pass a .ckpt file from a run's checkpoints/ folder"
        )
    state = read_lightning_checkpoint(path, what="init.checkpoint")["state_dict"]
    if init.fresh_prior:
        state = {k: v for k, v in state.items() if not model.model.is_prior_state(k)}
    taken, fresh = matching_state(model, state, path)
    model.load_state_dict(taken, strict=False)
    if init.train == "prior":
        model.model.train_prior_alone()
    started = f"; the prior's {len(fresh)} start afresh (e.g. {fresh[0]})" if fresh else ""
    trains = "the prior alone" if init.train == "prior" else "every parameter"
    return f"init: {len(taken)} tensors from {path}{started}; training {trains}"


def matching_state(model: VAE, state: dict[str, Any], path: str) -> tuple[dict[str, Any], list[str]]:
    """The tensors of ``state`` the model takes, and the names of the prior's it does not hold at the model's
    shapes; a one-line error where a tensor outside the prior is missing, of another shape, or left over."""
    expected = model.state_dict()
    prior = model.model.is_prior_state
    fits_model = {
        k: v for k, v in state.items() if k in expected and getattr(v, "shape", None) == expected[k].shape
    }
    problems = [k for k in expected if not prior(k) and k not in fits_model]
    problems += [k for k in state if k not in expected and not prior(k)]
    if problems:
        raise VaeZooError(
            f"init.checkpoint={path} holds another model's weights ({len(problems)} tensors outside the prior "
            f"differ, e.g. {problems[0]}) -- use the model= and size overrides it was trained with"
        )
    refuse_nonfinite_weights(
        fits_model, f"init.checkpoint={path}", " -- start from an earlier checkpoint of that run"
    )
    return fits_model, sorted(k for k in expected if k not in fits_model)
