"""Datamodules: real splits, device-resident batching, DDP sharding, and the missing-data error."""

from __future__ import annotations

import socket

import pytest
import torch

from vae_zoo.data import BinarizedMNISTDataModule, FashionMNISTDataModule, MNISTDataModule
from vae_zoo.data.datamodule import binarize_dynamic
from vae_zoo.data.tensor_batches import TensorBatches
from vae_zoo.errors import ConfigError, DataNotFoundError


@pytest.mark.parametrize("module", [MNISTDataModule, FashionMNISTDataModule, BinarizedMNISTDataModule])
def test_real_splits_are_50k_10k_10k_uint8_images(module, data_dir):
    dm = module(data_dir)
    dm.setup()
    assert {name: tuple(t.shape) for name, t in dm.splits.items()} == {
        "train": (50_000, 1, 28, 28),
        "val": (10_000, 1, 28, 28),
        "test": (10_000, 1, 28, 28),
    }
    assert all(t.dtype == torch.uint8 for t in dm.splits.values())


def test_static_binarized_mnist_is_binary_and_the_same_every_epoch(data_dir):
    dm = BinarizedMNISTDataModule(data_dir)
    first, second = next(iter(dm.val_dataloader())), next(iter(dm.val_dataloader()))
    assert set(first.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(first, second)
    # the fraction of on-pixels matches MNIST's mean grey level (~0.13), so the parse is right
    assert 0.12 < dm.splits["train"].float().div(255).mean() < 0.14


def test_dynamic_binarization_redraws_training_pixels_but_fixes_eval_images(data_dir):
    dm = MNISTDataModule(data_dir, binarize="dynamic")
    dm.setup()
    images = dm.splits["train"][:256]
    a, b = dm.train_transform(images), dm.train_transform(images)
    assert set(a.unique().tolist()) == {0.0, 1.0} and not torch.equal(a, b)
    # the Bernoulli mean is the grey level: every pixel's frequency within 6 standard errors of it
    draws, p = 400, images[:64].float() / 255
    frequency = torch.stack([dm.train_transform(images[:64]) for _ in range(draws)]).mean(0)
    assert torch.all((frequency - p).abs() <= 6 * (p * (1 - p) / draws).sqrt() + 1e-6)
    assert set(dm.splits["test"].unique().tolist()) == {0, 255}
    again = MNISTDataModule(data_dir, binarize="dynamic")
    again.setup()
    assert torch.equal(dm.splits["test"], again.splits["test"])


def test_binarization_frequencies_match_every_grey_level_and_a_wrong_probability_is_caught():
    """All 256 levels, 20000 draws each: the chi-square of the frequencies against k / 255 is within 5 of
    its standard deviations of its mean (256); against k / 256 (off by at most 1/255) it is far above."""
    draws = 20_000
    levels = torch.arange(256, dtype=torch.uint8).repeat_interleave(draws).view(256, 1, draws, 1)
    ones = binarize_dynamic(levels, torch.Generator().manual_seed(0)).view(256, draws).sum(1).double()

    def chi_square(p):
        inner = (p > 0) & (p < 1)
        return ((ones - draws * p)[inner] ** 2 / (draws * p * (1 - p))[inner]).sum().item()

    k = torch.arange(256, dtype=torch.float64)
    bound = 254 + 5 * (2 * 254) ** 0.5  # 254 levels strictly inside (0, 1)
    assert ones[0] == 0 and ones[255] == draws
    assert chi_square(k / 255) < bound < chi_square(k / 256)


def test_binarize_none_serves_grey_levels(data_dir):
    dm = MNISTDataModule(data_dir, binarize="none")
    batch = next(iter(dm.train_dataloader()))
    assert batch.dtype == torch.float32 and 0 <= batch.min() and batch.max() <= 1 and len(batch.unique()) > 2
    assert torch.equal(batch * 255, (batch * 255).round())  # 8-bit levels k/255


@pytest.mark.parametrize(
    ("module", "binarize", "pixels"),
    [
        (MNISTDataModule, "dynamic", "binary"),
        (MNISTDataModule, "none", "8bit"),
        (FashionMNISTDataModule, "none", "8bit"),
        (BinarizedMNISTDataModule, "none", "binary"),
    ],
)
def test_the_data_module_says_what_its_pixels_are_and_the_batches_agree(module, binarize, pixels, data_dir):
    dm = module(data_dir, binarize=binarize)
    values = set(next(iter(dm.train_dataloader())).unique().tolist())
    assert dm.pixels == pixels
    assert (values <= {0.0, 1.0}) == (pixels == "binary")


def test_batches_cover_the_split_once_per_epoch_and_reshuffle_per_epoch():
    images = torch.arange(1000).reshape(1000, 1, 1, 1)
    epoch = {"e": 0}
    batches = TensorBatches(images, 128, lambda t, g: t, shuffle=True, seed=3, epoch=lambda: epoch["e"])
    first = torch.cat(list(batches)).flatten()
    assert len(batches) == 8 and sorted(first.tolist()) == list(range(1000))
    assert torch.equal(first, torch.cat(list(batches)).flatten())  # same epoch, same order (resume-safe)
    epoch["e"] = 1
    assert not torch.equal(first, torch.cat(list(batches)).flatten())


@pytest.mark.parametrize(("n", "world_size"), [(1000, 2), (1001, 2), (10, 3)])
def test_ddp_shards_are_disjoint_cover_the_data_and_have_equal_length(n, world_size):
    images = torch.arange(n).reshape(n, 1, 1, 1)
    shards = [
        TensorBatches(
            images, 16, lambda t, g: t, shuffle=True, seed=0, rank=r, world_size=world_size
        ).shard_indices()
        for r in range(world_size)
    ]
    assert len({len(s) for s in shards}) == 1
    seen = torch.cat(shards)
    assert set(seen.tolist()) == set(range(n))
    assert len(seen) - len(set(seen.tolist())) == (-n) % world_size  # only the wrap-around padding repeats


def test_unknown_binarization_is_a_config_error(data_dir):
    with pytest.raises(ConfigError, match="data.binarize='static'"):
        MNISTDataModule(data_dir, binarize="static")


@pytest.mark.parametrize("module", [MNISTDataModule, FashionMNISTDataModule, BinarizedMNISTDataModule])
def test_missing_files_without_download_name_the_directory_and_files(module, tmp_path):
    with pytest.raises(DataNotFoundError) as error:
        module(str(tmp_path), download=False).setup()
    message = str(error.value)
    assert str(tmp_path) in message and ("idx3-ubyte" in message or ".amat" in message)
    assert "VAE_ZOO_DATA_DIR" in message and "\n" not in message


def _online() -> bool:
    try:
        socket.create_connection(("ossci-datasets.s3.amazonaws.com", 443), timeout=3).close()
        return True
    except OSError:
        return False


def test_missing_files_offline_fail_in_one_line_after_trying_to_download(tmp_path):
    if _online():
        pytest.skip("this machine is online, so the download would succeed")
    with pytest.raises(DataNotFoundError, match="downloading them failed") as error:
        MNISTDataModule(str(tmp_path)).setup()
    assert "\n" not in str(error.value)


def test_dequantized_pixels_are_uniform_within_their_level_fresh_in_training_and_fixed_in_evaluation(
    data_dir,
):
    dm = MNISTDataModule(data_dir, binarize="none", dequantize=True, batch_size=64, eval_batch_size=64)
    assert dm.pixels == "dequantized"
    dm.setup()
    levels = dm.splits["train"]
    epoch = {"e": 0}
    train = TensorBatches(levels[:64], 64, dm.train_transform, seed=0, epoch=lambda: epoch["e"])
    first = next(iter(train))
    epoch["e"] = 1
    second = next(iter(train))
    k = levels[:64].float()
    assert torch.all(first >= k / 256) and torch.all(first < (k + 1) / 256)  # (k + u) / 256, u in [0, 1)
    assert not torch.equal(first, second)  # fresh noise each epoch
    u = (first * 256 - k).flatten()
    assert abs(u.mean().item() - 0.5) < 0.01 and abs(u.var().item() - 1 / 12) < 0.01  # U(0, 1)
    val = [next(iter(dm.val_dataloader())) for _ in range(2)]
    assert torch.equal(val[0], val[1])  # the same evaluation noise every time


def test_dequantization_needs_grey_levels(data_dir):
    with pytest.raises(ConfigError, match="data.dequantize=true needs 8-bit pixels"):
        MNISTDataModule(data_dir, binarize="dynamic", dequantize=True)
    with pytest.raises(ConfigError, match="data.dequantize=true needs 8-bit pixels"):
        BinarizedMNISTDataModule(data_dir, binarize="none", dequantize=True)


def test_placement_auto_streams_from_the_host_when_the_splits_do_not_fit_the_device(monkeypatch, capsys):
    """The decision, without a GPU: a CUDA device with too little free memory keeps the splits on the host
    and says so in one line; enough memory, or placement=device, puts them on the device."""
    dm = MNISTDataModule("unused", placement="auto")
    monkeypatch.setattr(dm, "_device", lambda: torch.device("cuda", 0))
    arrays = {"train": torch.zeros(1000, 1, 28, 28, dtype=torch.uint8)}  # 784 kB
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (1_000_000, 80_000_000_000))
    assert dm._storage_device(arrays) == torch.device("cpu")
    message = capsys.readouterr().out.strip()
    assert "\n" not in message and "streaming batches from pinned host memory" in message
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (10_000_000, 80_000_000_000))
    assert dm._storage_device(arrays) == torch.device("cuda", 0)
    dm.placement = "device"
    monkeypatch.setattr(
        torch.cuda, "mem_get_info", lambda device: pytest.fail("placement=device measures nothing")
    )
    assert dm._storage_device(arrays) == torch.device("cuda", 0)


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")),
    ],
)
def test_streamed_batches_equal_resident_batches_and_resume_exactly(device, data_dir):
    """Host-resident images copied batch by batch to ``device`` give the resident path's batches, including
    the dynamic binarization noise, and the same batches after a mid-epoch resume."""
    images = MNISTDataModule(data_dir).load_splits()["test"][:700]
    host = torch.tensor(images)
    kwargs = {
        "batch_size": 128,
        "transform": binarize_dynamic,
        "shuffle": True,
        "seed": 5,
        "device": torch.device(device),
    }
    resident = list(TensorBatches(host.to(device), **kwargs))
    streamed_batches = TensorBatches(host, **kwargs)
    streamed = list(streamed_batches)
    assert all(torch.equal(a, b) for a, b in zip(resident, streamed, strict=True))
    assert streamed[0].device.type == device
    partial = TensorBatches(host, **kwargs)
    iterator = iter(partial)
    next(iterator), next(iterator)
    resumed = TensorBatches(host, **kwargs)
    resumed.load_state_dict(partial.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(list(resumed), streamed[2:], strict=True))
