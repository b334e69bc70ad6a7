"""``data=cifar10``, ``svhn`` and ``celeba`` on files written in torchvision's layouts (none of them is on
these machines), and the one-line errors for missing and corrupt files."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.io
from PIL import Image

from vae_zoo.data.celeba import CelebADataModule
from vae_zoo.data.cifar10 import FOLDER, TEST_FILE, TRAIN_FILES, CIFAR10DataModule
from vae_zoo.data.svhn import SVHNDataModule
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


def test_svhn_reads_torchvisions_mat_files(tmp_path):
    rng = np.random.default_rng(1)
    (tmp_path / "SVHN").mkdir()
    stored = {}
    for name, count in (("train_32x32.mat", 30), ("test_32x32.mat", 12)):
        x = rng.integers(0, 256, (32, 32, 3, count), dtype=np.uint8)
        y = rng.integers(1, 11, (count, 1))
        scipy.io.savemat(tmp_path / "SVHN" / name, {"X": x, "y": y})
        stored[name] = (x, y)
    dm = SVHNDataModule(str(tmp_path), val_size=10, download=False)
    splits = dm.load_splits()
    x, _ = stored["train_32x32.mat"]
    assert {k: len(v) for k, v in splits.items()} == {"train": 20, "val": 10, "test": 12}
    assert np.array_equal(splits["train"][3, 1], x[:, :, 1, 3])  # (H, W, C, N) -> (N, C, H, W)
    assert set(dm.test_labels().tolist()) <= set(range(10))  # the digit 0 is stored as 10
    (tmp_path / "SVHN" / "test_32x32.mat").write_bytes(b"MATLAB 5.0 truncated")
    with pytest.raises(DataNotFoundError, match="is not a readable SVHN file"):
        SVHNDataModule(str(tmp_path), val_size=10, download=False).load_splits()


def test_celeba_uses_the_official_partition_crops_and_resizes(tmp_path):
    rng = np.random.default_rng(2)
    images = tmp_path / "celeba" / "img_align_celeba"
    images.mkdir(parents=True)
    lines = []
    for index in range(12):
        name = f"{index + 1:06d}.jpg"
        Image.fromarray(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)).save(images / name)
        lines.append(f"{name} {0 if index < 8 else 1 if index < 10 else 2}")
    (tmp_path / "celeba" / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    dm = CelebADataModule(str(tmp_path), cache_dir=str(tmp_path / "cache"), download=False)
    splits = dm.load_splits()
    assert dm.input_shape == (3, 64, 64)
    assert {k: len(v) for k, v in splits.items()} == {"train": 8, "val": 2, "test": 2}
    (images / "000012.jpg").unlink()
    with pytest.raises(DataNotFoundError, match="1 images listed in .* are missing"):
        CelebADataModule(str(tmp_path), cache_dir=str(tmp_path / "cache"), download=False).load_splits()
    with pytest.raises(DataNotFoundError, match="dataset files not found"):
        CelebADataModule(str(tmp_path / "elsewhere"), download=False).load_splits()
