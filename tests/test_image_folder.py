"""``data=image_folder``: the same tensors as the idx files for the same images, the cache, colour images,
resizing, and bad or missing files each with one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import FAST
from tests.test_training import SHORT
from vae_zoo.cli import train
from vae_zoo.data import MNISTDataModule
from vae_zoo.data.image_folder import ImageFolderDataModule
from vae_zoo.errors import ConfigError, DataNotFoundError

SPLIT_SIZES = {"train": 120, "val": 40, "test": 40}


@pytest.fixture(scope="module")
def mnist_folder(tmp_path_factory, data_dir) -> tuple[Path, dict[str, np.ndarray]]:
    """The first 200 MNIST test digits written as PNG files into train/, val/ and test/ subfolders."""
    root = tmp_path_factory.mktemp("digits")
    dm = MNISTDataModule(data_dir, binarize="none")
    images = dm.load_splits()["test"][:200]
    arrays, start = {}, 0
    for split, size in SPLIT_SIZES.items():
        arrays[split] = images[start : start + size]
        (root / split).mkdir()
        for index, image in enumerate(arrays[split]):
            Image.fromarray(image[0]).save(root / split / f"{index:05d}.png")
        start += size
    return root, arrays


def test_a_folder_of_mnist_pngs_gives_the_idx_files_tensors(mnist_folder, tmp_path):
    root, arrays = mnist_folder
    dm = ImageFolderDataModule(str(root), cache_dir=str(tmp_path / "cache"))
    assert dm.input_shape == (1, 28, 28) and dm.pixels == "8bit"
    for split, expected in arrays.items():
        assert np.array_equal(dm.load_splits()[split], expected), split
    # binarized like MNIST: the same seeded evaluation images
    binarized = ImageFolderDataModule(str(root), cache_dir=str(tmp_path / "cache"), binarize="dynamic")
    reference = MNISTDataModule("unused", binarize="dynamic")
    reference.load_splits = lambda: {k: v.copy() for k, v in arrays.items()}
    binarized.setup()
    reference.setup()
    for split in SPLIT_SIZES:
        assert torch.equal(binarized.splits[split], reference.splits[split])


def test_the_second_run_loads_the_cache_and_a_changed_folder_is_decoded_again(
    mnist_folder, tmp_path, monkeypatch
):
    root, _ = mnist_folder
    cache = tmp_path / "cache"
    ImageFolderDataModule(str(root), cache_dir=str(cache)).load_splits()
    assert len(list(cache.glob("image_folder-*.npz"))) == 1
    monkeypatch.setattr("vae_zoo.data.image_folder.decode", lambda *a: pytest.fail("decoded again"))
    ImageFolderDataModule(str(root), cache_dir=str(cache)).load_splits()
    monkeypatch.undo()
    copy = tmp_path / "copy"
    for split in SPLIT_SIZES:
        (copy / split).mkdir(parents=True)
        for path in sorted((root / split).iterdir())[:10]:
            (copy / split / path.name).write_bytes(path.read_bytes())
    ImageFolderDataModule(str(copy), cache_dir=str(cache)).load_splits()
    assert len(list(cache.glob("image_folder-*.npz"))) == 2
    assert not list(copy.rglob("*.npz"))  # nothing written next to the user's images


def test_colour_images_of_mixed_sizes_are_resized_and_split_by_seeded_fractions(tmp_path):
    rng = np.random.default_rng(0)
    for index in range(30):
        size = (40, 32) if index % 2 else (24, 24)
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"{index}.{'png' if index % 3 else 'jpg'}")
    with pytest.raises(ConfigError, match="differ in size .* set data.image_size=N"):
        ImageFolderDataModule(str(tmp_path), cache_dir=str(tmp_path / "c")).load_splits()
    dm = ImageFolderDataModule(str(tmp_path), image_size=16, cache_dir=str(tmp_path / "c"), seed=3)
    splits = dm.load_splits()
    assert dm.input_shape == (3, 16, 16)
    assert {k: len(v) for k, v in splits.items()} == {"train": 24, "val": 3, "test": 3}
    again = ImageFolderDataModule(
        str(tmp_path), image_size=16, cache_dir=str(tmp_path / "c"), seed=3
    ).load_splits()
    assert all(np.array_equal(splits[k], again[k]) for k in splits)  # the same seeded split


def test_unreadable_files_are_skipped_with_a_count_or_stop_the_run_naming_the_file(
    mnist_folder, tmp_path, capsys
):
    root = tmp_path / "images"
    root.mkdir()
    for index in range(5):
        Image.fromarray(np.full((8, 8), index * 40, np.uint8)).save(root / f"{index}.png")
    (root / "empty.png").write_bytes(b"")
    (root / "notes.jpg").write_text("not an image")
    (root / "readme.txt").write_text("ignored: not an image extension")
    splits = ImageFolderDataModule(
        str(root), cache_dir=str(tmp_path / "c"), val_fraction=0, test_fraction=0.2
    ).load_splits()
    assert sum(len(v) for v in splits.values()) == 5
    assert "skipped 2 unreadable file(s): empty.png, notes.jpg" in capsys.readouterr().out
    with pytest.raises(ConfigError) as refusal:
        ImageFolderDataModule(str(root), cache_dir=str(tmp_path / "d"), on_bad_image="error").load_splits()
    assert "\n" not in str(refusal.value) and "empty.png" in str(refusal.value)


def test_an_empty_or_missing_folder_is_one_line(tmp_path):
    with pytest.raises(DataNotFoundError, match="no PNG or JPEG images under"):
        ImageFolderDataModule(str(tmp_path), cache_dir=str(tmp_path / "c")).load_splits()
    with pytest.raises(DataNotFoundError, match="is not a folder"):
        ImageFolderDataModule(str(tmp_path / "nothing"), cache_dir=str(tmp_path / "c")).load_splits()


def test_train_cli_on_a_colour_image_folder(tmp_path, make_cfg):
    rng = np.random.default_rng(1)
    for index in range(64):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(tmp_path / f"{index}.png")
    metrics = train(
        make_cfg(
            "data=image_folder",
            f"data.path={tmp_path}",
            f"data.cache_dir={tmp_path / 'cache'}",
            "data.batch_size=16",
            "likelihood=discretized_logistic",
            "encoder=conv",
            "decoder=conv",
            *SHORT,
            *FAST,
            "callbacks=none",
            "logger=[]",
        )
    )
    assert metrics["test/bpd"] > 0 and np.isfinite(metrics["test/nll_iw"])
