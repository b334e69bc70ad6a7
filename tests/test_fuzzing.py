"""The readers fuzzed with Hypothesis, a fixed seed and budget (``tests/fuzz_targets.py`` states the targets and
their property; ``python scripts/fuzz.py`` runs them longer). Each data reader either reads its file or refuses
it in one line naming it; checkpoints and run configs through ``eval.py``, ``sample.py``, ``train.py
ckpt_path=`` and ``vae_zoo.load`` either work or stop with one line and exit status 2; no payload runs; no file
already written changes."""

from __future__ import annotations

import math
import os
import pickle
import re
import shutil

import numpy as np
import pytest
import torch
from hydra.errors import ConfigCompositionException
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf
from PIL import Image

import vae_zoo
from tests.conftest import SMALL_RUN
from tests.fuzz_targets import (
    MARKER,
    WRONG_VALUES,
    amat_text,
    config_text,
    csv_text,
    damage_run_directory,
    digest,
    idx_bytes,
    image_bytes,
    mat_bytes,
    misspelled,
    mutate_checkpoint,
    npz_bytes,
    one_line_or_read,
    pickle_bytes,
    script_outcome,
    setting_keys,
)
from vae_zoo.cli import _report_user_errors, evaluate, sample, train
from vae_zoo.composition_errors import composition_error, refuse_uncomposable
from vae_zoo.config_groups import groups, options
from vae_zoo.data.cifar10 import read_batch
from vae_zoo.data.files import read_amat, read_idx
from vae_zoo.data.image_folder import ImageFolderDataModule, read_cache
from vae_zoo.data.svhn import read_mat
from vae_zoo.data.table import read_table
from vae_zoo.errors import VaeZooError
from vae_zoo.packing.grouping import apart, group
from vae_zoo.packing.job import PackJob
from vae_zoo.packing.train_pack import train_pack
from vae_zoo.saved_run import read_config_file

#: examples per target in CI (fixed seed: the same examples every run); ``VAE_ZOO_FUZZ_EXAMPLES`` sets them all
ASKED = os.environ.get("VAE_ZOO_FUZZ_EXAMPLES")


def budget(in_ci: int) -> int:
    return int(ASKED) if ASKED else in_ci


BUDGET, CHECKPOINT_BUDGET, OVERRIDE_BUDGET, PACK_BUDGET = budget(200), budget(100), budget(60), budget(15)
MISSPELLING_BUDGET = budget(60)
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
@given(image=image_bytes(), size=st.sampled_from([None, 4]), policy=st.sampled_from(["skip", "error"]))
def test_image_files(tmp_path_factory, image, size, policy):
    """A folder of two good 4x4 images and a drawn file: read (the drawn one decoded or skipped), or one line
    naming the problem; nothing under the folder changes."""
    root = tmp_path_factory.mktemp("images")
    for name in ("a.png", "b.png"):
        Image.new("L", (4, 4), color=7).save(root / name)
    suffix, content = image
    (root / f"drawn{suffix}").write_bytes(content)
    before = digest(root)
    module = ImageFolderDataModule(
        str(root), image_size=size, cache_dir=str(tmp_path_factory.mktemp("cache")), on_bad_image=policy
    )
    splits = one_line_or_read(module.load_splits)
    if splits is not None:
        side, channels = size or 4, splits["train"].shape[1]  # RGB when the drawn image is in colour
        assert all(a.dtype == np.uint8 and a.shape[1:] == (channels, side, side) for a in splits.values())
        assert sum(len(a) for a in splits.values()) in (2, 3)
    assert digest(root) == before


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


PRESETS = ("gaussian_vae", "gumbel_vae", "gamma_vae", "bernoulli_vae", "two_layer_vae", "vq_vae")
#: other options whose settings the drawn key may come from (a pairing a preset refuses is its one line)
OPTIONS = (
    (),
    ("prior=mog",),
    ("prior=vamp",),
    ("flow=planar",),
    ("flow=iaf",),
    ("objective=iwae",),
    ("scheduler=cosine",),
    ("+callbacks@callbacks.kl_warmup=kl_warmup",),
    ("+callbacks@callbacks.ema=ema",),
    ("+callbacks@callbacks.early_stopping=early_stopping",),
)


@settings(FIXED, max_examples=OVERRIDE_BUDGET)
@given(data=st.data())
def test_overrides(tmp_path_factory, make_cfg, data):
    """``python train.py model=<preset> [<option>] <key>=<wrong value>``, a key from the composed settings (the
    settings reference's), in this process: it trains, or one line and exit status 2 -- never a traceback. An override
    that does not compose (a mapping for a list) is refused before the program runs, in one line naming the key."""
    folder = tmp_path_factory.mktemp("override")
    preset = data.draw(st.sampled_from(PRESETS), label="preset")
    sizes = [o for o in SMALL_RUN if not o.startswith("model.latent.")]  # each preset's own latent size
    options = data.draw(st.sampled_from(OPTIONS), label="options")
    run = (f"model={preset}", *options, *sizes, "trainer.max_epochs=1")
    key = data.draw(st.sampled_from(setting_keys(make_cfg(*run, output_dir=folder))), label="key")
    value = data.draw(st.sampled_from(WRONG_VALUES), label="value")
    try:
        cfg = make_cfg(*run, f"{key}={value}", output_dir=folder / "run")
    except ConfigCompositionException as refused:  # refused before train.py's code runs, in this line
        line = str(composition_error(refused))
        assert key in line and "\n" not in line, line
        return
    script_outcome(lambda: _report_user_errors(train, cfg))


#: the groups a user chooses options of on the command line (less Hydra's own and the paths)
GROUPS = tuple(group for group in groups() if group not in ("hydra", "paths"))


@settings(FIXED, max_examples=MISSPELLING_BUDGET)
@given(data=st.data())
def test_misspelled_overrides(make_cfg, capsys, data):
    """``python train.py <override>`` with one character of a real key, group or option slipped, as train.py
    checks it before Hydra runs: it composes (the slip made another real name), or it is one line with exit
    status 2 that names what was typed, and a ``did you mean X?`` names a key or option that exists."""
    kind = data.draw(st.sampled_from(("key", "group", "option")), label="kind")
    group = data.draw(st.sampled_from(GROUPS), label="group")
    option = data.draw(st.sampled_from(sorted(options(group))), label="option")
    cfg = make_cfg()
    if kind == "key":
        parent, _, name = data.draw(st.sampled_from(setting_keys(cfg)), label="key").rpartition(".")
        typed = f"{parent}.{misspelled(data, name)}" if parent else misspelled(data, name)
        override = f"{typed}=null"
    else:
        typed = misspelled(data, group if kind == "group" else option)
        override = f"{typed}={option}" if kind == "group" else f"{group}={typed}"
    try:
        refuse_uncomposable("train", [override])
        return
    except SystemExit as exit:
        assert exit.code == 2
    line = capsys.readouterr().err
    assert line.startswith("error: ") and line.count("\n") == 1 and typed in line, line
    guess = re.search(r"did you mean (\S+)\?", line)
    if guess and "=" in guess.group(1):  # an option: group=option
        chosen, _, suggested = guess.group(1).partition("=")
        assert suggested in options(chosen), line
    elif guess:  # a key, or a group (or Hydra's own node) at the top level
        absent = object()
        assert (
            OmegaConf.select(cfg, guess.group(1), default=absent) is not absent or guess.group(1) in groups()
        ), line


#: a job's own settings in a packed sweep: good values and wrong ones
JOB_SETTINGS = {
    "seed": ("0", "1", "2", "-1", "abc"),
    "model.optimizer.lr": ("0.001", "0.003", "-1", "nan", "0"),
    "objective.beta": ("1.0", "0.5", "-1", "nan", "inf"),
}
GOOD = {"seed": ("0", "1", "2"), "model.optimizer.lr": ("0.001", "0.003"), "objective.beta": ("1.0", "0.5")}


@settings(FIXED, max_examples=PACK_BUDGET)
@given(data=st.data())
def test_packed_job_lists(tmp_path_factory, make_cfg, data):
    """One to four jobs of a packed sweep, each with its own drawn seed, learning rate and KL weight, good or
    wrong, trained as one pack (``train_pack``): one result per job -- its metrics where its settings are
    good, whatever its neighbours hold, else its one line."""
    folder = tmp_path_factory.mktemp("pack")
    drawn = [
        {
            key: data.draw(st.sampled_from(values), label=f"job {n} {key}")
            for key, values in JOB_SETTINGS.items()
        }
        for n in range(data.draw(st.integers(1, 4), label="jobs"))
    ]
    jobs = [
        PackJob(
            make_cfg(
                *SMALL_RUN,
                "trainer.max_epochs=1",
                *(f"{key}={value}" for key, value in settings_of_job.items()),
                output_dir=folder / f"job{n}",
            )
        )
        for n, settings_of_job in enumerate(drawn)
    ]
    results = train_pack(jobs)
    assert len(results) == len(jobs)
    for settings_of_job, result in zip(drawn, results, strict=True):
        good = all(value in GOOD[key] for key, value in settings_of_job.items())
        if isinstance(result, VaeZooError):
            assert not good and "\n" not in str(result).strip(), str(result)
        else:
            assert good and math.isfinite(result["test/elbo"]), (settings_of_job, result)


@FIXED
@given(
    keys=st.lists(
        st.fixed_dictionaries({"dim": st.sampled_from([8, 16]), "hidden": st.sampled_from([[32], [64]])}),
        min_size=1,
        max_size=12,
    ),
    max_models=st.integers(1, 5),
)
def test_job_lists_group_into_packs(keys, max_models):
    """Every job in exactly one pack, in order; no pack above ``max_models``; a pack's jobs of one key; a job
    alone only where it differs from every other (``apart`` names a differing setting), is the only job, or
    the packs of its key before it are full."""
    packs = group(keys, max_models)
    assert sorted(n for pack in packs for n in pack) == list(range(len(keys)))
    assert all(pack == sorted(pack) and 1 <= len(pack) <= max_models for pack in packs)
    assert all(keys[n] == keys[pack[0]] for pack in packs for n in pack)
    for pack in packs:
        if len(pack) == 1:
            reason = apart(keys, pack[0])
            twins = [m for m, key in enumerate(keys) if key == keys[pack[0]] and m != pack[0]]
            assert (reason is None) == (bool(twins) or len(keys) == 1)
            if reason:
                assert reason.startswith("it differs from job ") and ("dim" in reason or "hidden" in reason)


@settings(FIXED, max_examples=CHECKPOINT_BUDGET)
@given(data=st.data())
def test_run_directories(tmp_path_factory, trained_run, marker, data):
    """``vae_zoo.load(<run directory>)`` on a copy of a real run with one file deleted, damaged or changed:
    the model, or one line; the directory is left as it was."""
    run = tmp_path_factory.mktemp("run") / "copy"
    shutil.copytree(trained_run, run)
    change = damage_run_directory(data, run)
    before = digest(run)
    one_line_or_read(lambda: vae_zoo.load(run))
    assert digest(run) == before, f"{change}: a file changed"
