"""Checkpoint files that survive a crash at any instant and a full disk, and that are read as data.

Every checkpoint vae_zoo reads (``ckpt_path=``, ``ckpt_path=last``, eval.py, sample.py, the best checkpoint
after training) goes through ``read_checkpoint``: torch's weights-only unpickler, which builds tensors,
containers and plain values and refuses any other name before calling it.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from vae_zoo.errors import VaeZooError

PARTIAL = ".partial-"  # in the name of a checkpoint being written: `.last.ckpt.partial-<pid>`
serialize = torch.save  # writes a checkpoint into an open file (the fault tests slow it down or break it)


class CheckpointReadError(VaeZooError):
    """A checkpoint file that is corrupt, not a checkpoint, or holds objects other than tensors and values."""


def read_checkpoint(path: str | Path, map_location: Any = "cpu", what: str = "ckpt_path") -> dict[str, Any]:
    """The checkpoint at ``path``, read weights-only; one ``CheckpointReadError`` line when it cannot be (a
    file that names a function or class, e.g. a pickled ``os.system`` call, is refused before it runs).
    ``what`` names the file in the message (``ckpt_path`` where the user passed it)."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except (  # bytes that do not parse as a checkpoint fail in pickle's memo (KeyError), its opcodes, the zip, ...
        pickle.UnpicklingError,
        RuntimeError,
        EOFError,
        OSError,
        ValueError,
        KeyError,
        IndexError,
        TypeError,
    ) as error:
        named = re.search(r"GLOBAL (\S+)", str(error))
        if named:
            raise CheckpointReadError(
                f"{what}={path} is not a plain checkpoint: it names {named.group(1)}, which a checkpoint of "
                "tensors and settings never holds (checkpoints are read weights-only: nothing it names was "
                "called) -- use a checkpoint vae_zoo wrote"
            ) from None
        raise CheckpointReadError(
            f"{what}={path} cannot be read as a Lightning checkpoint ({type(error).__name__}): the file is "
            f"corrupt or not a checkpoint -- pass another {what}"
        ) from None


def refuse_nonfinite_weights(state: Mapping[str, Any], named: str, consequence: str) -> None:
    """One ``VaeZooError`` line, ``<named> holds non-finite weights (N tensors, e.g. <name>)<consequence>``, where
    floating-point tensors of the ``state_dict`` ``state`` hold a NaN or an infinity: weights a run wrote after it
    diverged (``model.nonfinite=off``), or a changed file."""
    nonfinite = [
        name
        for name, value in state.items()
        if torch.is_tensor(value) and value.is_floating_point() and not value.isfinite().all()
    ]
    if nonfinite:
        raise VaeZooError(
            f"{named} holds non-finite weights ({len(nonfinite)} tensors, e.g. {nonfinite[0]}){consequence}"
        )


def read_lightning_checkpoint(path: str | Path, what: str = "ckpt_path") -> dict[str, Any]:
    """``read_checkpoint`` of a file that must be a Lightning checkpoint (a dict with a ``state_dict``); ``what``
    names the setting that gave it."""
    checkpoint = read_checkpoint(path, what=what)
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise CheckpointReadError(
            f"{what}={path} is not a Lightning checkpoint (no state_dict) -- pass a .ckpt file from a run's "
            "checkpoints/ folder"
        )
    return checkpoint


class CheckpointWriteError(VaeZooError):
    """A checkpoint could not be written (full disk, I/O error); the previous one is intact."""


def fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX: the directory entry is data of the directory)."""
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def remove_partial_checkpoints(directory: Path) -> list[Path]:
    """Delete the ``.partial-`` files a killed writer left in ``directory`` (call it holding the run lock,
    when no other process can be writing there); returns what it removed."""
    leftovers = sorted(directory.glob(f".*{PARTIAL}*")) if directory.is_dir() else []
    for path in leftovers:
        path.unlink(missing_ok=True)
    return leftovers


class DurableCheckpointIO(TorchCheckpointIO):
    """Each checkpoint goes to ``.<name>.partial-<pid>`` beside its target, is flushed to disk (fsync),
    renamed over the target (atomic on POSIX) and the rename made durable (fsync of the directory). A kill
    at any instant leaves either the old file or the new one under the target name, never a truncated one.
    A failed write (ENOSPC, EIO) deletes its partial file and stops the run with one line naming the
    directory and its free space. Remote paths (``s3://``, ...) keep Lightning's own writer. Reading is
    ``read_checkpoint`` (weights-only, one line for a bad file), remote paths included."""

    def load_checkpoint(
        self, path, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        if "://" in str(path):
            return super().load_checkpoint(path, weights_only=True)
        if not Path(path).is_file():
            return super().load_checkpoint(path)  # Lightning's own FileNotFoundError
        return read_checkpoint(path, map_location or (lambda storage, location: storage), what="checkpoint")

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any = None) -> None:
        if "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        path = Path(path)
        partial = path.with_name(f".{path.name}{PARTIAL}{os.getpid()}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(partial, "wb") as handle:
                serialize(checkpoint, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, path)
            fsync_directory(path.parent)
        except OSError as error:
            partial.unlink(missing_ok=True)
            free = shutil.disk_usage(path.parent).free / 2**20 if path.parent.is_dir() else float("nan")
            reason = error.strerror or type(error).__name__
            raise CheckpointWriteError(
                f"cannot write checkpoint {path.name} in {path.parent} ({reason}; {free:.0f} MiB free there) "
                "-- free space or move the run, then resume with ckpt_path=last: the previous checkpoint is intact"
            ) from None
