"""Reading the raw dataset files: idx (MNIST, Fashion-MNIST) and Larochelle's .amat (binarized MNIST).

Both readers accept the plain file or its ``.gz`` and return uint8 numpy arrays, without writing anything
next to the data (a shared data directory may be read-only). A file that is truncated or corrupt (a cut
``.gz``, an idx header that does not match the bytes after it, an ``.amat`` row of the wrong length) stops
the run with one line naming it, before anything trains on it.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from vae_zoo.errors import VaeZooError


class DataFileError(VaeZooError):
    """A dataset file exists but is truncated, corrupt, or not the kind of file it is named as."""


def _corrupt(path: Path, what: str) -> DataFileError:
    return DataFileError(
        f"{path} is truncated or corrupt ({what}) -- delete it and fetch it again (data.download=true), "
        "or restore it from its source"
    )


def find_file(directory: Path, name: str) -> Path | None:
    """``directory/name`` or ``directory/name.gz``, whichever exists first, else None."""
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_bytes(path: Path) -> bytes:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            return handle.read()
    except (EOFError, gzip.BadGzipFile, OSError) as error:  # a cut or damaged .gz
        raise _corrupt(path, str(error) or type(error).__name__) from None


def read_idx(path: Path) -> np.ndarray:
    """An idx file (big-endian dims after a 4-byte magic whose last byte is the rank) as uint8."""
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08":
        raise _corrupt(path, "no idx header of unsigned bytes")
    rank, start = raw[3], 4 + 4 * raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank)]
    expected = start + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        shape = " x ".join(map(str, dims))
        raise _corrupt(path, f"its header says {shape} = {expected} bytes with the header, it has {len(raw)}")
    return np.frombuffer(raw, dtype=np.uint8, offset=start).reshape(dims)


SPACES = (b" ", b"\t", b"\r", b"\n")  # what separates an .amat file's cells


def read_amat(path: Path, width: int = 784) -> np.ndarray:
    """A whitespace-separated 0/1 text matrix as uint8 rows of ``width`` (fast: no text parsing); every cell must
    be ``0`` or ``1`` and every non-empty line hold exactly ``width`` of them."""
    text = _read_bytes(path)
    raw = np.frombuffer(text, dtype=np.uint8)
    digit = (raw == ord("0")) | (raw == ord("1"))
    other = ~digit & ~np.isin(raw, np.frombuffer(b"".join(SPACES), dtype=np.uint8))
    joined = digit[1:] & digit[:-1]  # two digits in one cell ("10")
    if other.any() or joined.any():
        at = int(np.argmax(other)) if other.any() else int(np.argmax(joined))
        start = max(text.rfind(space, 0, at) for space in SPACES) + 1
        ends = [end for end in (text.find(space, at) for space in SPACES) if end >= 0]
        cell = text[start : min(ends, default=len(text))]
        number = text.count(b"\n", 0, at) + 1
        raise _corrupt(path, f"line {number} holds {cell.decode(errors='replace')!r}, not a 0 or 1 cell")
    for number, line in enumerate(text.split(b"\n"), start=1):
        values = line.count(b"0") + line.count(b"1")
        if values not in (0, width):
            raise _corrupt(path, f"line {number} holds {values} values, not {width}")
    return (raw[digit] - ord("0")).reshape(-1, width)
