"""The readers fuzzed with Hypothesis, a fixed seed and budget (``tests/fuzz_targets.py`` states the targets and
their property; ``python scripts/fuzz.py`` runs them longer). Each data reader either reads its file or refuses
it in one line naming it; checkpoints and run configs through ``eval.py``, ``sample.py``, ``train.py
ckpt_path=`` and ``vae_zoo.load`` either work or stop with one line and exit status 2; no payload runs; no file
already written changes."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vae_zoo
from tests.conftest import TINY, run_script
from tests.fuzz_targets import (
    MARKER,
    amat_text,
    config_text,
    csv_text,
    digest,
    idx_bytes,
    mat_bytes,
    mutate_checkpoint,
    npz_bytes,
    one_line_or_read,
    pickle_bytes,
    script_outcome,
)
from vae_zoo.cli import _report_user_errors, evaluate, sample, train
from vae_zoo.data.cifar10 import read_batch
from vae_zoo.data.files import read_amat, read_idx
from vae_zoo.data.image_folder import read_cache
from vae_zoo.data.svhn import read_mat
from vae_zoo.data.table import read_table
from vae_zoo.saved_run import read_config_file

#: examples per target in CI (fixed seed: the same examples every run)
BUDGET = int(os.environ.get("VAE_ZOO_FUZZ_EXAMPLES", "200"))
CHECKPOINT_BUDGET = int(os.environ.get("VAE_ZOO_FUZZ_CHECKPOINTS", "100"))
#: scripts/fuzz.py's long runs draw fresh examples (pytest --hypothesis-seed) instead of CI's fixed ones
FRESH = os.environ.get("VAE_ZOO_FUZZ_RANDOM") == "1"
FIXED = settings(
    max_examples=BUDGET,
    derandomize=not FRESH,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)


@pytest.fixture
def marker(tmp_path, monkeypatch):
    """The file a payload would create; the test fails if it exists at the end."""
    path = tmp_path / "payload-ran"
    monkeypatch.setenv(MARKER, str(path))
    yield path
    assert not path.exists(), "a payload ran"


@FIXED
@given(content=idx_bytes())
def test_idx_files(tmp_path, content):
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(content)
    array = one_line_or_read(lambda: read_idx(path), names=path)
    if array is not None:
        assert (
            array.dtype == np.uint8 and content[2] == 0x08 and array.size == len(content) - 4 - 4 * content[3]
        )


@FIXED
@given(text=amat_text(), width=st.integers(1, 4))
def test_amat_files(tmp_path, text, width):
    path = tmp_path / "binarized_mnist_test.amat"
    path.write_text(text)
    array = one_line_or_read(lambda: read_amat(path, width), names=path)
    if array is not None:  # read correctly: exactly the file's 0/1 cells, row by row
        rows = [line.split() for line in text.split("\n") if line.split()]
        assert all(cell in ("0", "1") for row in rows for cell in row)
        assert array.tolist() == [[int(cell) for cell in row] for row in rows] or (
            not rows and array.size == 0
        )


@FIXED
@given(content=pickle_bytes())
def test_cifar10_batches(tmp_path, marker, content):
    path = tmp_path / "data_batch_1"
    path.write_bytes(content)
    read = one_line_or_read(lambda: read_batch(path), names=path)
    if read is not None:
        images, labels = read
        assert images.shape == (len(labels), 3, 32, 32) and images.dtype == np.uint8


@FIXED
@given(data=st.data())
def test_svhn_files(tmp_path, data):
    path = tmp_path / "test_32x32.mat"
    path.write_bytes(data.draw(mat_bytes(tmp_path)))
    read = one_line_or_read(lambda: read_mat(path), names=path)
    if read is not None:
        images, labels = read
        assert images.dtype == np.uint8 and images.shape[1:] == (3, 32, 32) and len(labels) == len(images)


@FIXED
@given(data=st.data())
def test_image_folder_caches(tmp_path, marker, data):
    """An unreadable cache is decoded again (None, saying so), never unpickled, never a traceback."""
    path = tmp_path / "image_folder-0123.npz"
    path.write_bytes(data.draw(npz_bytes(tmp_path)))
    arrays = read_cache(path)
    if arrays is not None:
        assert all(
            (a.dtype == np.uint8 and a.ndim == 4) or (name.endswith("_labels") and a.dtype == np.int64)
            for name, a in arrays.items()
        )


@FIXED
@given(text=csv_text(), header=st.sampled_from([None, True, False]))
def test_csv_tables(tmp_path, text, header):
    path = tmp_path / "table.csv"
    path.write_text(text)
    read = one_line_or_read(lambda: read_table(path, header), names=path)
    if read is not None:
        names, values = read
        assert values.ndim == 2 and values.size and np.isfinite(values).all()
        assert names is None or len(names) == values.shape[1]


@FIXED
@given(data=st.data(), suffix=st.sampled_from([".npy", ".npz"]))
def test_array_tables(tmp_path, marker, data, suffix):
    path = tmp_path / f"table{suffix}"
    content = data.draw(npz_bytes(tmp_path)) if suffix == ".npz" else data.draw(st.binary(max_size=300))
    if suffix == ".npy" and data.draw(st.booleans()):  # a real .npy header with drawn contents
        np.save(
            path,
            data.draw(
                st.sampled_from(
                    [np.zeros((2, 3)), np.zeros(3), np.array([[np.nan]]), np.zeros((0, 2)), np.array([["a"]])]
                )
            ),
        )
        content = path.read_bytes()
    path.write_bytes(content)
    read = one_line_or_read(lambda: read_table(path), names=path)
    if read is not None:
        assert read[1].ndim == 2 and read[1].size and np.isfinite(read[1]).all()


@FIXED
@given(text=config_text())
def test_run_configs(tmp_path, marker, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    one_line_or_read(lambda: read_config_file(path), names=path)


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory, data_dir):
    """A real checkpoint of a small run (5 steps), for the checkpoint target to change."""
    run = tmp_path_factory.mktemp("fuzzed") / "run"
    result = run_script(
        "train.py", *SMALL_RUN, "trainer.max_epochs=1", f"paths.data_dir={data_dir}", f"hydra.run.dir={run}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)


#: a tiny model with its checkpoints (the default callbacks) and no logger, 2 steps an epoch
SMALL_RUN = (*TINY[:-2], "logger=[]", "+trainer.limit_train_batches=2")
READERS = ("eval.py", "sample.py", "train.py ckpt_path=", "vae_zoo.load")
EVAL_SETTINGS = ("trainer.limit_test_batches=1", "data.eval_batch_size=20", "eval.iw_samples=2")


@settings(FIXED, max_examples=CHECKPOINT_BUDGET)
@given(data=st.data(), reader=st.sampled_from(READERS), truncate=st.booleans())
def test_checkpoints(tmp_path_factory, make_cfg, trained_checkpoint, marker, data, reader, truncate):
    """A changed checkpoint (hyperparameters, carried run config, weights; or the file cut short), alone in its
    folder, through each reader in this process: it works, or one line and exit status 2."""
    folder = tmp_path_factory.mktemp("checkpoint")
    checkpoint = pickle.loads(pickle.dumps(trained_checkpoint))  # a deep copy of plain data and tensors
    change = mutate_checkpoint(data, checkpoint)
    path = folder / "changed.ckpt"
    torch.save(checkpoint, path)
    if truncate:
        raw = path.read_bytes()
        path.write_bytes(raw[: data.draw(st.integers(0, len(raw) - 1), label="cut at")])
    before = digest(folder)
    out = folder / "out"
    if reader == "vae_zoo.load":
        one_line_or_read(lambda: vae_zoo.load(path))
    elif reader == "eval.py":
        cfg = make_cfg(f"ckpt_path={path}", *EVAL_SETTINGS, output_dir=out, config_name="eval")
        script_outcome(lambda: _report_user_errors(evaluate, cfg))
    elif reader == "sample.py":
        cfg = make_cfg(
            f"ckpt_path={path}",
            "grids.n=4",
            "grids.pairs=2",
            "grids.steps=3",
            output_dir=out,
            config_name="sample",
        )
        script_outcome(lambda: _report_user_errors(sample, cfg))
    else:
        cfg = make_cfg(*SMALL_RUN, "trainer.max_epochs=2", f"ckpt_path={path}", output_dir=out)
        script_outcome(lambda: _report_user_errors(train, cfg))
    after = digest(folder)
    assert all(after.get(name) == value for name, value in before.items()), (
        f"{change}: a file already written changed"
    )
