"""Pickled dataset files read as data, never as code.

``pickle.load`` calls whatever function a file names (``os.system`` as easily as ``numpy.ndarray``), so a
data file from anywhere could run anything the moment it is read. ``load_plain_pickle`` admits only what
a dataset pickle holds: dicts, lists, tuples, bytes, str, numbers, and numpy arrays and dtypes (rebuilt
by numpy's own array constructors, as numpy 1 and 2 and protocols 2 to 5 write them, and the ``_codecs``
call with which Python 3 writes bytes at protocol 2). A file that names anything else is refused before
anything it names is called.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

#: the only callables a plain pickle may name: numpy's array and dtype reconstruction, bytes at protocol 2
ADMITTED = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
    }
)


class RefusedPickle(pickle.UnpicklingError):
    """A pickle names something other than plain data; ``name`` is what it names."""

    def __init__(self, name: str) -> None:
        super().__init__(f"it names {name}")
        self.name = name


class PlainUnpickler(pickle.Unpickler):
    """An unpickler whose ``find_class`` resolves only ``ADMITTED`` names and that has no persistent ids."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ADMITTED:
            return super().find_class(module, name)
        raise RefusedPickle(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise RefusedPickle("a persistent object")


def load_plain_pickle(path: Path, encoding: str = "bytes") -> Any:
    """The plain data pickled in ``path`` (``encoding`` decodes Python 2 strings, as ``pickle.load``);
    ``RefusedPickle`` if it names anything outside ``ADMITTED``."""
    with path.open("rb") as handle:
        return PlainUnpickler(handle, encoding=encoding).load()
