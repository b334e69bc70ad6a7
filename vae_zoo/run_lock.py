"""One process per run directory: an ``fcntl`` lock that the kernel releases when its holder dies."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vae_zoo.errors import VaeZooError

LOCK_NAME = ".lock"
_held: dict[Path, int] = {}  # the run directories this process has locked, and the lock files' descriptors


class RunDirectoryLocked(VaeZooError):
    """Another live process is writing this run directory."""


def hold_run_directory(directory: Path) -> None:
    """Take the exclusive lock of ``directory`` until this process ends or ``release`` (a no-op if this
    process holds it already). A crashed holder's lock is gone with it (the kernel drops the ``flock``
    locks of dead processes, unlike a PID file), so a successor takes over; while the holder lives, this
    stops with one line naming it."""
    directory = directory.resolve()
    if directory in _held:
        return
    directory.mkdir(parents=True, exist_ok=True)
    handle = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(handle, 200, 0).decode(errors="replace").strip() or "another process"
        os.close(handle)
        raise RunDirectoryLocked(
            f"{directory} is in use by {holder}: wait for it to finish, or give this run another hydra.run.dir"
        ) from None
    os.ftruncate(handle, 0)
    os.pwrite(handle, f"process {os.getpid()} on {os.uname().nodename}".encode(), 0)
    _held[directory] = handle


def release(directory: Path) -> None:
    handle = _held.pop(directory.resolve(), None)
    if handle is not None:
        os.close(handle)  # closing the descriptor drops the lock


@contextmanager
def run_directory_lock(directory: Path, take: bool = True) -> Iterator[None]:
    """The lock of ``directory`` inside the ``with``: already held (``train.py`` takes it before Hydra
    writes there), kept; else taken here and released at the end. ``take=False`` (the other ranks of a
    distributed run): nothing."""
    held_before = directory.resolve() in _held
    if take:
        hold_run_directory(directory)
    try:
        yield
    finally:
        if take and not held_before:
            release(directory)
