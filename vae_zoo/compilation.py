"""``model.compile``: torch.compile of the probabilistic model's networks, or of the whole training loss."""

from __future__ import annotations

from torch import nn

from vae_zoo.errors import ConfigError

#: torch.compile modes for ``model.compile`` (None: ``true``); reduce-overhead records CUDA graphs on a GPU
COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
#: what ``model.compile`` compiles: encoder and decoder, or the whole training loss (objective, forward and
#: backward, through every component) as one graph
COMPILE_SCOPES = ("modules", "loss")


def compile_in_place(model: nn.Module, objective: nn.Module, compile: bool | str, scope: str) -> bool:
    """Compile ``model``'s encoder and decoder (``scope=modules``) or ``objective`` (``scope=loss``) in place,
    so parameter names and checkpoints stay those of the plain modules; nothing where ``compile`` is false.
    Returns whether the whole loss is compiled. Unknown modes and scopes stop with one line."""
    if not compile:
        return False
    mode = None if compile is True else compile
    if mode not in COMPILE_MODES:
        raise ConfigError(
            f"model.compile={compile} is not one of true, false, {', '.join(COMPILE_MODES[1:])}"
        )
    if scope not in COMPILE_SCOPES:
        raise ConfigError(f"model.compile_scope={scope} is not one of {', '.join(COMPILE_SCOPES)}")
    for module in (objective,) if scope == "loss" else (model.encoder, model.decoder):
        module.compile(mode=mode)
    return scope == "loss"
