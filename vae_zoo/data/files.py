"""Reading the raw dataset files: idx (MNIST, Fashion-MNIST) and Larochelle's .amat (binarized MNIST).

Both readers accept the plain file or its ``.gz`` and return uint8 numpy arrays, without writing anything
next to the data (a shared data directory may be read-only).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np


def find_file(directory: Path, name: str) -> Path | None:
    """``directory/name`` or ``directory/name.gz``, whichever exists first, else None."""
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_bytes(path: Path) -> bytes:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        return handle.read()


def read_idx(path: Path) -> np.ndarray:
    """An idx file (big-endian dims after a 4-byte magic whose last byte is the rank) as uint8."""
    raw = _read_bytes(path)
    if raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise ValueError(f"{path} is not an idx file of unsigned bytes")
    rank = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def read_amat(path: Path, width: int = 784) -> np.ndarray:
    """A whitespace-separated 0/1 text matrix as uint8 rows of ``width`` (fast: no text parsing)."""
    raw = np.frombuffer(_read_bytes(path), dtype=np.uint8)
    digits = raw[(raw == ord("0")) | (raw == ord("1"))] - ord("0")
    if digits.size % width:
        raise ValueError(f"{path} holds {digits.size} values, not a multiple of {width}")
    return digits.reshape(-1, width)
