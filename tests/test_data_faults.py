"""Damaged dataset files stop the run with one line naming the file, never a traceback and never a run
that trains on what is left: a cut .gz, an idx header that does not match its bytes, a short .amat row."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from tests.conftest import FAST, run_script
from vae_zoo.data.files import DataFileError, read_amat, read_idx

MNIST_FILES = ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def mnist_copy(data_dir: str, tmp_path: Path) -> Path:
    """A data folder holding a copy of the real MNIST files (plain, no .gz)."""
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST_FILES:
        shutil.copy(Path(data_dir) / "MNIST" / "raw" / name, raw / name)
    return raw


def test_a_truncated_gz_is_one_line_from_train_py(data_dir, tmp_path):
    raw = mnist_copy(data_dir, tmp_path)
    images = raw / "train-images-idx3-ubyte"
    packed = gzip.compress(images.read_bytes())
    images.unlink()
    (raw / "train-images-idx3-ubyte.gz").write_bytes(packed[: len(packed) // 2])  # a download cut short
    result = run_script(
        "train.py",
        f"paths.data_dir={tmp_path / 'data'}",
        "data.download=false",
        f"hydra.run.dir={tmp_path / 'run'}",
        *FAST,
    )
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line == (
        f"error: {raw / 'train-images-idx3-ubyte.gz'} is truncated or corrupt (Compressed file ended before the "
        "end-of-stream marker was reached) -- delete it and fetch it again (data.download=true), or restore it "
        "from its source"
    )


def test_an_idx_file_shorter_than_its_header_says_is_refused(data_dir, tmp_path):
    images = mnist_copy(data_dir, tmp_path) / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-784])  # one image short
    with pytest.raises(
        DataFileError, match=r"its header says 10000 x 28 x 28 = 7840016 bytes .* it has 7839232"
    ):
        read_idx(images)
    images.write_bytes(b"\x00\x00\x0d\x03")  # a float idx, not the bytes MNIST holds
    with pytest.raises(DataFileError, match="no idx header of unsigned bytes"):
        read_idx(images)


def test_an_amat_file_with_a_short_row_is_refused_naming_the_line(data_dir, tmp_path):
    real = gzip.decompress((Path(data_dir) / "BinarizedMNIST" / "binarized_mnist_valid.amat.gz").read_bytes())
    lines = real.split(b"\n")[:5]
    assert read_amat_bytes(tmp_path, b"\n".join(lines)).shape == (5, 784)
    lines[3] = lines[3][: len(lines[3]) // 2]  # a row cut in half
    with pytest.raises(DataFileError, match="line 4 holds 392 values, not 784"):
        read_amat_bytes(tmp_path, b"\n".join(lines))
    lines[3] = b""  # row 4 moved onto row 3: 5 x 784 values in all, so a count of all values passes
    lines[2] = lines[2] + b" " + lines[1]
    with pytest.raises(DataFileError, match="line 3 holds 1568 values, not 784"):
        read_amat_bytes(tmp_path, b"\n".join(lines))


def read_amat_bytes(tmp_path: Path, data: bytes):
    path = tmp_path / "binarized_mnist_valid.amat"
    path.write_bytes(data)
    return read_amat(path)
