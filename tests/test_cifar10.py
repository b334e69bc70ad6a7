"""``data=cifar10`` on files written in torchvision's layout (no CIFAR-10 on these machines), and the
one-line errors for missing and corrupt files."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from vae_zoo.data.cifar10 import FOLDER, TEST_FILE, TRAIN_FILES, CIFAR10DataModule
from vae_zoo.errors import DataNotFoundError


def write_batches(root, per_file: int = 20) -> np.ndarray:
    """Random CIFAR-format batches: ``data`` rows of 3072 bytes (R, G, B planes of 32x32), ``labels``."""
    rng = np.random.default_rng(0)
    (root / FOLDER).mkdir(parents=True)
    everything = []
    for name in (*TRAIN_FILES, TEST_FILE):
        data = rng.integers(0, 256, (per_file, 3072), dtype=np.uint8)
        everything.append(data)
        with (root / FOLDER / name).open("wb") as handle:
            pickle.dump({b"data": data, b"labels": list(rng.integers(0, 10, per_file))}, handle)
    return np.concatenate(everything).reshape(-1, 3, 32, 32)


def test_cifar10_reads_torchvisions_layout_into_channel_planes(tmp_path):
    images = write_batches(tmp_path)
    dm = CIFAR10DataModule(str(tmp_path), val_size=10, download=False)
    splits = dm.load_splits()
    assert dm.input_shape == (3, 32, 32) and dm.pixels == "8bit"
    assert {k: len(v) for k, v in splits.items()} == {"train": 90, "val": 10, "test": 20}
    assert np.array_equal(splits["train"], images[:90]) and np.array_equal(splits["test"], images[100:])
    assert len(dm.test_labels()) == 20


def test_missing_or_corrupt_cifar10_files_are_one_line(tmp_path):
    with pytest.raises(DataNotFoundError, match="dataset files not found") as refusal:
        CIFAR10DataModule(str(tmp_path), download=False).load_splits()
    assert "\n" not in str(refusal.value)
    write_batches(tmp_path)
    (tmp_path / FOLDER / TEST_FILE).write_bytes(b"\x80\x04truncated")
    with pytest.raises(DataNotFoundError, match="is not a readable CIFAR-10 batch"):
        CIFAR10DataModule(str(tmp_path), download=False).load_splits()
