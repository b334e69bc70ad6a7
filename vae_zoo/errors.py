"""User-facing errors: each carries one line that names the problem and the fix."""

from __future__ import annotations

from typing import TypeVar

E = TypeVar("E", bound=BaseException)


def cause_of_type(error: BaseException | None, kind: type[E]) -> E | None:
    """The first exception of ``kind`` in ``error``'s chain of causes and contexts (Hydra's instantiate and
    Lightning wrap the errors raised inside them), else None. A chain that loops back on itself (an exception
    re-raised while it was being handled) ends where it would repeat."""
    seen: set[int] = set()
    while error is not None and not isinstance(error, kind) and id(error) not in seen:
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return error if isinstance(error, kind) else None


class VaeZooError(Exception):
    """A problem with the user's input; the CLI prints its message alone and exits non-zero."""


class ConfigError(VaeZooError):
    """A configuration that cannot work (wrong pairing, impossible value)."""


class NotPackable(ConfigError):
    """A setting or component that has no packed form: the packed launcher runs its jobs unpacked."""


class DataNotFoundError(VaeZooError):
    """Dataset files are missing and could not be downloaded."""


class NonFiniteLossError(VaeZooError):
    """A non-finite loss term or gradient stopped training."""
