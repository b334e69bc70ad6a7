"""Building a component from its config dict, as a class of the role it fills and nothing else.

Hydra calls whatever a ``_target_`` names, so a config that names ``os.system`` runs a command. The configs
a model is built from also travel inside its checkpoints (the component dicts in its hyperparameters,
the run config of a checkpoint shared on its own), so every component, the model and the data module
are built through ``build``: the target is resolved to a class first (importing its module, calling
nothing the config names), the class must subclass the role's base (an encoder a ``torch.nn.Module``, a
latent family a ``LatentFamily``, an optimizer a ``torch.optim.Optimizer``, ...), and only then is it
instantiated. Nested ``_target_`` dicts reach the constructor as plain dicts (``_recursive_=False``), for
it to build with ``build`` in turn, as the model builds its components.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hydra.utils import get_class, instantiate
from lightning_fabric.utilities.exceptions import MisconfigurationException

from vae_zoo.errors import ConfigError, VaeZooError, cause_of_type
from vae_zoo.setting_types import check_settings


def component_class(config: Mapping[str, Any], base: type | tuple[type, ...], where: str) -> type:
    """The class ``config["_target_"]`` names, checked to subclass ``base``; ``where`` is the config key
    (``model.latent``) named in the one-line error."""
    target = config.get("_target_") if isinstance(config, Mapping) else None
    bases = base if isinstance(base, tuple) else (base,)
    role = " or ".join(cls.__name__ for cls in bases)
    if not isinstance(target, str):
        raise ConfigError(f"{where} has no _target_ naming its class: choose one of the {where} options")
    try:
        cls = get_class(target)
    except (ImportError, ValueError, AttributeError):
        raise ConfigError(
            f"{where}._target_={target!r} is not an importable class (a {role} is needed): nothing was called "
            "-- check the name, or the config or checkpoint it came from"
        ) from None
    if not issubclass(cls, bases):
        raise ConfigError(
            f"{where}._target_={target!r} is not a {role}: refused before it was called -- check the config or "
            "checkpoint it came from"
        )
    return cls


def build(config: Mapping[str, Any], base: type | tuple[type, ...], where: str, **kwargs: Any) -> Any:
    """``config`` instantiated (with ``kwargs``) once ``component_class`` has checked its target and
    ``check_settings`` its keys and their types; settings arrive as plain Python containers. A class from
    outside vae_zoo (Lightning's Trainer and callbacks, torch's optimizers) that refuses its settings with its
    own ``ValueError``, ``TypeError`` or ``MisconfigurationException`` is answered with that line, and so is a
    vae_zoo class whose ``__init__`` is such a class's (``callbacks.BestAndLastCheckpoint``)."""
    cls = component_class(config, base, where)
    check_settings(cls, config, where)
    try:
        return instantiate(config, **kwargs, _recursive_=False, _convert_="all")
    except Exception as error:
        refused = cause_of_type(error, (ValueError, TypeError, MisconfigurationException))
        checker = next(c for c in cls.__mro__ if "__init__" in vars(c))  # the class whose __init__ checks
        if checker.__module__.startswith("vae_zoo") or refused is None or cause_of_type(error, VaeZooError):
            raise
        raise refused_settings(cls, where, refused) from None


def refused_settings(cls: type, where: str, refusal: BaseException) -> ConfigError:
    """The one line for a class outside vae_zoo that refused the settings at ``where`` with ``refusal``."""
    reason = (str(refusal).strip() or type(refusal).__name__).splitlines()[0]
    return ConfigError(f"{where}: {cls.__name__} refused its settings: {reason} -- check {where}.*")


def build_with_sizes(
    config: Mapping[str, Any], base: type, where: str, sizes: Mapping[str, Any], **kwargs: Any
) -> Any:
    """``build`` (with ``kwargs``) with the entries of ``sizes`` that the class names in its ``sizes`` attribute
    (the shapes an estimator's or a prior's own networks need: ``input_shape``, ``latent_features``; a latent
    family's, the encoder's ``grid_shape``)."""
    needs = getattr(component_class(config, base, where), "sizes", ())
    return build(config, base, where, **kwargs, **{name: sizes[name] for name in needs})
