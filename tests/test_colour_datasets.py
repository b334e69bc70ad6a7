"""``data=cifar10``, ``svhn`` and ``celeba`` on files written in torchvision's layouts (none of them is on
these machines), and the one-line errors for missing and corrupt files."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from tests.conftest import FAST
from vae_zoo.cli import build_datamodule_and_model, train, user_error
from vae_zoo.data.celeba import CelebADataModule
from vae_zoo.data.cifar10 import FOLDER, TEST_FILE, TRAIN_FILES, CIFAR10DataModule
from vae_zoo.data.files import DataFileError
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
            pickle.dump(
                {b"data": data, b"labels": rng.integers(0, 10, per_file).tolist()}, handle, protocol=2
            )
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
    with pytest.raises(DataFileError, match="is not a readable CIFAR-10 batch"):
        CIFAR10DataModule(str(tmp_path), download=False).load_splits()


def write_svhn(root) -> dict:
    """Random SVHN ``.mat`` files (``X`` as (H, W, C, N), digits 1-10), 30 training and 12 test images."""
    rng = np.random.default_rng(1)
    (root / "SVHN").mkdir(parents=True)
    stored = {}
    for name, count in (("train_32x32.mat", 30), ("test_32x32.mat", 12)):
        x = rng.integers(0, 256, (32, 32, 3, count), dtype=np.uint8)
        y = rng.integers(1, 11, (count, 1))
        scipy.io.savemat(root / "SVHN" / name, {"X": x, "y": y})
        stored[name] = (x, y)
    return stored


def write_celeba(root) -> Path:
    """12 random 218 x 178 JPEG faces and the official partition file (8 train, 2 val, 2 test)."""
    rng = np.random.default_rng(2)
    images = root / "celeba" / "img_align_celeba"
    images.mkdir(parents=True)
    lines = []
    for index in range(12):
        name = f"{index + 1:06d}.jpg"
        Image.fromarray(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)).save(images / name)
        lines.append(f"{name} {0 if index < 8 else 1 if index < 10 else 2}")
    (root / "celeba" / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return images


def write_photographs(root, count: int = 40) -> Path:
    """``count`` random 24 x 24 colour PNGs: a user's image folder."""
    rng = np.random.default_rng(3)
    root.mkdir(parents=True)
    for index in range(count):
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(root / f"{index}.png")
    return root


def test_svhn_reads_torchvisions_mat_files(tmp_path):
    stored = write_svhn(tmp_path)
    dm = SVHNDataModule(str(tmp_path), val_size=10, download=False)
    splits = dm.load_splits()
    x, _ = stored["train_32x32.mat"]
    assert {k: len(v) for k, v in splits.items()} == {"train": 20, "val": 10, "test": 12}
    assert np.array_equal(splits["train"][3, 1], x[:, :, 1, 3])  # (H, W, C, N) -> (N, C, H, W)
    assert set(dm.test_labels().tolist()) <= set(range(10))  # the digit 0 is stored as 10
    (tmp_path / "SVHN" / "test_32x32.mat").write_bytes(b"MATLAB 5.0 truncated")
    with pytest.raises(DataFileError, match="is not a readable SVHN file"):
        SVHNDataModule(str(tmp_path), val_size=10, download=False).load_splits()


def test_celeba_uses_the_official_partition_crops_and_resizes(tmp_path):
    images = write_celeba(tmp_path)
    dm = CelebADataModule(str(tmp_path), cache_dir=str(tmp_path / "cache"), download=False)
    splits = dm.load_splits()
    assert dm.input_shape == (3, 64, 64)
    assert {k: len(v) for k, v in splits.items()} == {"train": 8, "val": 2, "test": 2}
    (images / "000012.jpg").unlink()
    with pytest.raises(DataNotFoundError, match="1 images listed in .* are missing"):
        CelebADataModule(str(tmp_path), cache_dir=str(tmp_path / "cache"), download=False).load_splits()
    with pytest.raises(DataNotFoundError, match="dataset files not found"):
        CelebADataModule(str(tmp_path / "elsewhere"), download=False).load_splits()


#: each data config with no other choice on the command line: the likelihood its pixels call for, and
#: convolutional networks for photographs (settings: only sizes for the small generated sets)
DEFAULT_COMPOSITIONS = {
    "mnist": ((), "bernoulli", "mlp"),
    "binarized_mnist": ((), "bernoulli", "mlp"),
    "fashion_mnist": ((), "bernoulli", "mlp"),
    "fashion_mnist grey levels": (("data.binarize=none",), "discretized_logistic", "mlp"),
    "fashion_mnist dequantized": (
        ("data.binarize=none", "data.dequantize=true"),
        "continuous_bernoulli",
        "mlp",
    ),
    "cifar10": (("data.val_size=10",), "discretized_logistic", "conv"),
    "svhn": (("data.val_size=10",), "discretized_logistic", "conv"),
    "celeba": ((), "discretized_logistic", "conv"),
    "image_folder": ((), "discretized_logistic", "conv"),
}


@pytest.mark.parametrize("case", DEFAULT_COMPOSITIONS)
def test_each_data_config_composes_a_fitting_likelihood_and_networks_and_trains_two_steps(
    case, tmp_path, make_cfg, data_dir
):
    settings, likelihood, networks = DEFAULT_COMPOSITIONS[case]
    data = case.split()[0]
    root = {"cifar10": write_batches, "svhn": write_svhn, "celeba": write_celeba}.get(data)
    generated = []
    if root is not None:
        root(tmp_path / "data")
        generated = [f"paths.data_dir={tmp_path / 'data'}"]
    if data == "image_folder":
        generated = [f"data.path={write_photographs(tmp_path / 'photos')}"]
    cfg = make_cfg(
        f"data={data}",
        *settings,
        *generated,
        "data.batch_size=4",
        "data.eval_batch_size=4",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
        *FAST,
        "callbacks=none",
        "logger=[]",
    )
    metrics = train(cfg)
    assert metrics["likelihood"] == likelihood and metrics["global_step"] == 2
    assert (
        cfg.model.encoder._target_
        == f"vae_zoo.nets.{networks}.{networks.upper() if networks == 'mlp' else 'Conv'}Encoder"
    )
    assert np.isfinite(metrics["test/nll_iw"])


def test_an_explicit_choice_wins_over_the_data_configs_and_a_misfit_names_the_likelihoods_that_fit(make_cfg):
    cfg = make_cfg("data=cifar10", "likelihood=gaussian", "encoder=mlp")
    assert cfg.model.likelihood._target_.endswith("GaussianLikelihood")
    assert cfg.model.encoder._target_.endswith("MLPEncoder") and cfg.model.decoder._target_.endswith(
        "ConvDecoder"
    )
    with pytest.raises(Exception) as refusal:
        build_datamodule_and_model(make_cfg("data=cifar10", "likelihood=bernoulli"))
    assert str(user_error(refusal.value)).startswith(
        "likelihood=bernoulli is a density of binary pixels, but the data serves 8bit pixels -- choose one of "
        "likelihood=discretized_logistic"
    )
    with pytest.raises(Exception) as refusal:
        build_datamodule_and_model(
            make_cfg("data.binarize=none", "data.dequantize=true", "likelihood=discretized_logistic")
        )
    assert "choose one of likelihood=continuous_bernoulli, likelihood=gaussian" in str(
        user_error(refusal.value)
    )
