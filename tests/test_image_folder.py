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


def write_classes(root: Path, counts: dict[str, int], start: int = 0) -> None:
    """``counts[name]`` 8x8 grey PNGs in ``root/<name>/``, each filled with its class's grey level (the
    sorted index times 60), so that a label can be read back from its image."""
    for k, name in enumerate(sorted(counts)):
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(counts[name]):
            Image.fromarray(np.full((8, 8), 60 * k, np.uint8)).save(root / name / f"{start + index}.png")


def labels_from_pixels(images: np.ndarray) -> np.ndarray:
    return images[:, 0, 0, 0].astype(np.int64) // 60


def test_class_subfolders_label_each_image_through_splits_skips_and_the_cache(tmp_path):
    root = tmp_path / "images"
    write_classes(root, {"cat": 12, "dog": 7, "emu": 9})
    (root / "dog" / "broken.png").write_bytes(b"not a png")  # skipped: the labels stay with their images
    for attempt in ("decoded", "cached"):
        datamodule = ImageFolderDataModule(
            str(root), cache_dir=str(tmp_path / "c"), val_fraction=0.2, test_fraction=0.2
        )
        assert datamodule.classes == 3, attempt
        splits, labels = datamodule.load_splits(), datamodule.load_label_splits()
        assert sum(len(split) for split in splits.values()) == 28
        for split in ("train", "val", "test"):
            assert np.array_equal(labels[split], labels_from_pixels(splits[split])), (attempt, split)


def test_split_folders_share_the_training_images_classes(tmp_path):
    root = tmp_path / "images"
    write_classes(root / "train", {"a": 5, "b": 5})
    write_classes(root / "val", {"a": 2, "b": 2})
    write_classes(root / "test", {"b": 3})  # a split need not hold every class: "b" is the training images' 1
    datamodule = ImageFolderDataModule(str(root), cache_dir=str(tmp_path / "c"))
    datamodule.serve_labels()
    datamodule.setup()
    assert datamodule.label_splits["test"].tolist() == [1, 1, 1]
    assert datamodule.label_splits["val"].tolist() == [0, 0, 1, 1]
    write_classes(root / "val", {"zebra": 1}, start=100)
    with pytest.raises(ConfigError) as refusal:
        ImageFolderDataModule(str(root), cache_dir=str(tmp_path / "d")).load_label_splits()
    assert str(refusal.value) == (
        f"{root / 'val'}/zebra is not a class of the training images (their folders: a, b): its label would be "
        "outside [0, 2) -- move it, or add the class to train/"
    )


def test_a_folder_with_images_outside_class_folders_has_no_labels(tmp_path):
    write_classes(tmp_path / "images", {"a": 3})
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "images" / "loose.png")
    datamodule = ImageFolderDataModule(str(tmp_path / "images"), cache_dir=str(tmp_path / "c"))
    assert datamodule.classes is None
    with pytest.raises(ConfigError, match=r"condition=label needs class labels"):
        datamodule.serve_labels()


def test_a_conditional_model_trains_on_class_subfolders(tmp_path, make_cfg):
    write_classes(tmp_path / "images", {"a": 20, "b": 20, "c": 20})
    metrics = train(
        make_cfg(
            "data=image_folder",
            f"data.path={tmp_path / 'images'}",
            f"data.cache_dir={tmp_path / 'cache'}",
            "data.batch_size=16",
            "condition=label",
            *SHORT,
            *FAST,
            "callbacks=none",
            "logger=[]",
        )
    )
    assert metrics["condition"] == "label" and np.isfinite(metrics["test/nll_iw"])
