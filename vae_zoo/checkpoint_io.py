"""Checkpoint files that survive a crash at any instant and a full disk."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from vae_zoo.errors import VaeZooError

PARTIAL = ".partial-"  # in the name of a checkpoint being written: `.last.ckpt.partial-<pid>`
serialize = torch.save  # writes a checkpoint into an open file (the fault tests slow it down or break it)


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
    directory and its free space. Remote paths (``s3://``, ...) keep Lightning's own writer."""

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
