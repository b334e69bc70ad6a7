"""No file vae_zoo reads runs code: a payload in every format that can carry one (a pickled CIFAR-10 batch, an
image-folder cache, a checkpoint, a run config, a checkpoint's component configs) is refused with one line
before anything it names is called, and the payload's marker file is never written."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from tests.conftest import FAST, run_script
from tests.test_colour_datasets import write_batches
from vae_zoo.data.cifar10 import FOLDER, TEST_FILE, CIFAR10DataModule
from vae_zoo.data.files import DataFileError
from vae_zoo.data.image_folder import ImageFolderDataModule
from vae_zoo.data.plain_pickle import load_plain_pickle
from vae_zoo.data.svhn import SVHNDataModule
from vae_zoo.errors import ConfigError
from vae_zoo.models import VAE


class Payload:
    """Pickles as a call of ``os.system`` that creates ``marker``: what a hostile file would carry."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def one_line(message: str) -> str:
    assert "\n" not in message.strip(), message
    return message


def test_a_plain_pickle_of_a_batch_round_trips_at_every_protocol(tmp_path):
    batch = {b"data": np.arange(12, dtype=np.uint8).reshape(2, 6), b"labels": [3, 7], b"batch_label": b"x"}
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        path = tmp_path / f"batch{protocol}"
        path.write_bytes(pickle.dumps(batch, protocol=protocol))
        loaded = load_plain_pickle(path)
        assert np.array_equal(loaded[b"data"], batch[b"data"]) and loaded[b"labels"] == [3, 7]


@pytest.mark.parametrize("where", ["the whole file", "one label inside a real batch"])
def test_a_cifar10_batch_carrying_a_payload_is_refused_and_the_payload_never_runs(where, tmp_path):
    write_batches(tmp_path)
    marker = tmp_path / "ran"
    batch = Payload(marker)
    if where != "the whole file":
        batch = {b"data": np.zeros((20, 3072), np.uint8), b"labels": [Payload(marker)] + [0] * 19}
    (tmp_path / FOLDER / TEST_FILE).write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataFileError) as refusal:
        CIFAR10DataModule(str(tmp_path), val_size=10, download=False).load_splits()
    message = one_line(str(refusal.value))
    assert (
        "is not a CIFAR-10 batch: it names posix.system" in message
        and "nothing it names was called" in message
    )
    assert not marker.exists()


def test_train_py_on_a_payload_cifar10_folder_prints_one_line_and_runs_nothing(tmp_path):
    write_batches(tmp_path / "data")
    marker = tmp_path / "ran"
    (tmp_path / "data" / FOLDER / TEST_FILE).write_bytes(pickle.dumps(Payload(marker)))
    result = run_script(
        "train.py",
        "data=cifar10",
        f"paths.data_dir={tmp_path / 'data'}",
        "data.val_size=10",
        f"hydra.run.dir={tmp_path / 'run'}",
        *FAST,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert one_line(result.stderr).startswith(
        f"error: {tmp_path / 'data' / FOLDER / TEST_FILE} is not a CIFAR-10"
    )
    assert not marker.exists()


def test_an_image_folder_cache_holding_a_pickle_is_decoded_again_not_unpickled(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for index in range(6):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / f"{index}.png")
    cache = tmp_path / "cache"
    settings = {"cache_dir": str(cache), "val_fraction": 0.2, "test_fraction": 0.2, "download": False}
    clean = ImageFolderDataModule(str(tmp_path), **settings).load_splits()
    (written,) = cache.glob("*.npz")
    marker = tmp_path / "ran"
    payload = np.empty(1, dtype=object)
    payload[0] = Payload(marker)
    np.savez(written, train=payload)  # an object array: stored as a pickle inside the archive
    reloaded = ImageFolderDataModule(str(tmp_path), **settings).load_splits()
    assert not marker.exists()
    assert "ignoring the cache" in capsys.readouterr().out
    assert all(np.array_equal(clean[split], reloaded[split]) for split in clean)


def test_a_decompression_bomb_is_skipped_or_refused_by_name(tmp_path):
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "small.png")
    Image.new("1", (20_000, 20_000)).save(tmp_path / "bomb.png")  # 400 M pixels in a few kB
    skipped = ImageFolderDataModule(
        str(tmp_path), cache_dir=str(tmp_path / "c1"), val_fraction=0, test_fraction=0
    )
    assert len(skipped.load_splits()["train"]) == 1
    strict = ImageFolderDataModule(
        str(tmp_path), cache_dir=str(tmp_path / "c2"), on_bad_image="error", val_fraction=0, test_fraction=0
    )
    with pytest.raises(ConfigError, match="cannot read image .*bomb.png"):
        strict.load_splits()


def test_an_svhn_file_holding_matlab_objects_instead_of_pixels_is_one_line(tmp_path):
    """scipy parses .mat files and builds no Python objects from them; a file whose ``X`` is not an array of
    pixels (here a cell array of strings) is refused naming the file."""
    (tmp_path / "SVHN").mkdir()
    cells = np.empty((1, 2), dtype=object)
    cells[0, 0], cells[0, 1] = "touch", "ran"
    for name in ("train_32x32.mat", "test_32x32.mat"):
        scipy.io.savemat(tmp_path / "SVHN" / name, {"X": cells, "y": np.ones((1, 1))})
    with pytest.raises(DataFileError, match="is not a readable SVHN file") as refusal:
        SVHNDataModule(str(tmp_path), val_size=1, download=False).load_splits()
    one_line(str(refusal.value))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, data_dir):
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    result = run_script(
        "train.py",
        "debug=fdr",
        *FAST,
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def test_checkpoints_carrying_a_payload_are_refused_by_train_eval_and_resume(trained_run, data_dir, tmp_path):
    marker = tmp_path / "ran"
    hostile = tmp_path / "hostile.ckpt"
    torch.save({"state_dict": {}, "extra": Payload(marker)}, hostile)
    resumed = tmp_path / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    (resumed / "checkpoints" / "last.ckpt").write_bytes(hostile.read_bytes())
    common = (*FAST, f"paths.data_dir={data_dir}")
    for script, overrides in (
        ("train.py", ["debug=fdr", f"ckpt_path={hostile}", f"hydra.run.dir={tmp_path / 'a'}"]),
        ("train.py", ["debug=fdr", "ckpt_path=last", f"hydra.run.dir={resumed}"]),
        ("eval.py", [f"ckpt_path={hostile}", f"hydra.run.dir={tmp_path / 'b'}"]),
    ):
        result = run_script(script, *overrides, *common)
        assert result.returncode == 2, result.stderr[-3000:]
        assert "is not a plain checkpoint: it names posix.system" in one_line(result.stderr)
    assert not marker.exists()


def test_a_run_config_with_a_python_tag_is_one_line_from_eval(trained_run, data_dir, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes((trained_run / "checkpoints" / "last.ckpt").read_bytes())
    marker = tmp_path / "ran"
    (run / ".hydra").mkdir()
    (run / ".hydra" / "config.yaml").write_text(f"seed: !!python/object/apply:os.system ['touch {marker}']\n")
    result = run_script(
        "eval.py", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", f"hydra.run.dir={tmp_path / 'e'}", *FAST
    )
    assert result.returncode == 2 and "is not a plain YAML config" in one_line(result.stderr)
    assert not marker.exists()


def test_component_configs_in_a_checkpoint_can_only_name_classes_of_their_role(
    trained_run, data_dir, tmp_path
):
    marker = tmp_path / "ran"
    checkpoint = torch.load(trained_run / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["hyper_parameters"]["encoder"] = {"_target_": "os.system", "command": f"touch {marker}"}
    hostile = tmp_path / "alone" / "hostile.ckpt"
    hostile.parent.mkdir()
    torch.save(checkpoint, hostile)  # still weights-only loadable: the call is named by a string
    with pytest.raises(ConfigError, match="model.encoder._target_='os.system' is not an importable class"):
        VAE.load_from_checkpoint(hostile, map_location="cpu")
    checkpoint["hyper_parameters"]["encoder"]["_target_"] = "pathlib.Path"
    torch.save(checkpoint, hostile)
    with pytest.raises(ConfigError, match="is not a Module: refused before it was called"):
        VAE.load_from_checkpoint(hostile, map_location="cpu")
    checkpoint["hyper_parameters"]["encoder"]["_target_"] = "os.system"
    torch.save(checkpoint, hostile)
    result = run_script(
        "eval.py", f"ckpt_path={hostile}", f"paths.data_dir={data_dir}", f"hydra.run.dir={tmp_path / 'e'}"
    )
    assert result.returncode == 2 and "model.encoder._target_='os.system'" in one_line(result.stderr)
    assert not marker.exists()
