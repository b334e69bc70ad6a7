"""What the fuzzer found (``tests/test_fuzzing.py``), each kept as a plain test of its one-line answer."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import scipy.io
import torch

import vae_zoo
from tests.conftest import SMALL_RUN
from tests.fuzz_targets import script_outcome
from vae_zoo.cli import _report_user_errors, evaluate, sample, train
from vae_zoo.data.files import DataFileError, read_amat
from vae_zoo.data.svhn import read_mat
from vae_zoo.errors import VaeZooError, cause_of_type
from vae_zoo.saved_run import read_config_file


@pytest.mark.parametrize(("text", "cell"), [("0.5", "0.5"), ("1 10", "10"), ("0 x", "x")])
def test_an_amat_cell_that_is_not_0_or_1_is_refused_not_misread(tmp_path, text, cell):
    """Found: ``0.5`` was read as the cell 0 (the reader counted the characters 0 and 1)."""
    path = tmp_path / "binarized_mnist_test.amat"
    path.write_text(text)
    with pytest.raises(DataFileError, match=f"line 1 holds '{cell}', not a 0 or 1 cell"):
        read_amat(path, 2)


def test_an_svhn_file_with_more_labels_than_images_is_one_line(tmp_path):
    """Found: 0 images and 2 labels were returned as a split of mismatched lengths."""
    path = tmp_path / "test_32x32.mat"
    scipy.io.savemat(str(path), {"X": np.zeros((32, 32, 3, 0), np.uint8), "y": np.array([[1], [10]])})
    with pytest.raises(
        DataFileError, match=r"is not an SVHN file: 2 labels for images of shape \(0, 3, 32, 32\)"
    ):
        read_mat(path)


@pytest.mark.parametrize(
    ("text", "message"), [("0\n", "Invalid loaded object type"), ("- a\n- b\n", "a YAML list")]
)
def test_a_run_config_that_is_no_mapping_is_one_line(tmp_path, text, message):
    """Found: a YAML scalar raised OmegaConf's OSError; a list failed later at the first attribute read."""
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(VaeZooError, match=message):
        read_config_file(path)


def changed(checkpoint: dict, tmp_path, change) -> str:
    copy = {**checkpoint, "hyper_parameters": dict(checkpoint["hyper_parameters"])}
    copy["vae_zoo_run"] = {**checkpoint["vae_zoo_run"], "config": dict(checkpoint["vae_zoo_run"]["config"])}
    copy["state_dict"] = dict(checkpoint["state_dict"])
    change(copy)
    path = tmp_path / "changed.ckpt"
    torch.save(copy, path)
    return str(path)


@pytest.mark.parametrize(
    ("change", "expected"),
    [  # found: each of these was Hydra's or OmegaConf's multi-line error, or a RuntimeError's traceback
        (
            lambda c: c["vae_zoo_run"]["config"].update(seed="${vae_zoo.nothing:1}"),
            "its run config cannot be read (UnsupportedInterpolationType",
        ),
        (
            lambda c: c["vae_zoo_run"].update(config=["a", "list"]),
            "its run config is not a mapping of settings with a model",
        ),
        (
            lambda c: c["vae_zoo_run"]["config"].pop("model"),
            "its run config is not a mapping of settings with a model",
        ),
        (
            lambda c: c["state_dict"].update({"encoder.net.0.bias": torch.zeros(3)}),
            "holds weights that do not fit its own model",
        ),
        (
            lambda c: c["hyper_parameters"].update(latent={**c["hyper_parameters"]["latent"], "dim": "x"}),
            "model.latent.dim='x' must be an integer",
        ),
        (  # a carriage return named as the class: it was printed as is, a line break in the one line
            lambda c: c["hyper_parameters"].update(
                encoder={**c["hyper_parameters"]["encoder"], "_target_": "\r"}
            ),
            "model.encoder._target_='\\r' is not an importable class",
        ),
    ],
)
def test_a_changed_checkpoint_is_one_line_from_eval(trained_checkpoint, make_cfg, tmp_path, change, expected):
    path = changed(trained_checkpoint, tmp_path, change)
    cfg = make_cfg(
        f"ckpt_path={path}",
        "trainer.limit_test_batches=1",
        "eval.iw_samples=2",
        output_dir=tmp_path / "e",
        config_name="eval",
    )
    status, line = script_outcome(lambda: _report_user_errors(evaluate, cfg))
    assert status == 2 and expected in line and "changed.ckpt" in line, line
    if (
        "UnsupportedInterpolationType" in expected
    ):  # vae_zoo.load reads the model, not the run's seed: it loads
        assert vae_zoo.load(path).input_shape == (1, 28, 28)
    else:
        with pytest.raises(VaeZooError, match="changed.ckpt"):
            vae_zoo.load(path)


def test_resuming_non_finite_weights_is_one_line_without_lightnings_warning(
    trained_checkpoint, make_cfg, tmp_path
):
    """Found: NaN weights crashed in the sampler (RuntimeError), and Lightning's note that the checkpoint came
    from another directory preceded the one line."""
    path = changed(
        trained_checkpoint,
        tmp_path,
        lambda c: c["state_dict"].update(
            {"encoder.net.0.weight": torch.full_like(c["state_dict"]["encoder.net.0.weight"], float("nan"))}
        ),
    )
    cfg = make_cfg(*SMALL_RUN, "trainer.max_epochs=2", f"ckpt_path={path}", output_dir=tmp_path / "t")
    status, line = script_outcome(lambda: _report_user_errors(train, cfg))
    assert status == 2 and line == (
        f"error: ckpt_path={path} holds non-finite weights (1 tensors, e.g. encoder.net.0.weight): training cannot "
        "continue from them -- resume from an earlier checkpoint of the run"
    )


def test_reading_non_finite_weights_is_one_line_in_every_reader(trained_checkpoint, make_cfg, tmp_path):
    """Found by the checkpoint target's long run (seed 528098793): NaN in the encoder's bias made eval.py's
    first posterior sample a RuntimeError traceback (``normal expects all elements of std >= 0.0``). eval.py,
    sample.py and ``vae_zoo.load`` now refuse non-finite weights in one line, as resuming does."""
    path = changed(
        trained_checkpoint,
        tmp_path,
        lambda c: c["state_dict"].update(
            {"encoder.net.0.bias": torch.full_like(c["state_dict"]["encoder.net.0.bias"], float("nan"))}
        ),
    )
    expected = (
        f"error: {path} holds non-finite weights (1 tensors, e.g. encoder.net.0.bias): the run diverged before "
        "writing it, or the file was changed -- use an earlier checkpoint of the run"
    )
    cfg = make_cfg(f"ckpt_path={path}", "eval.iw_samples=2", output_dir=tmp_path / "e", config_name="eval")
    assert script_outcome(lambda: _report_user_errors(evaluate, cfg)) == (2, expected)
    cfg = make_cfg(f"ckpt_path={path}", "grids.n=4", output_dir=tmp_path / "s", config_name="sample")
    assert script_outcome(lambda: _report_user_errors(sample, cfg)) == (2, expected)
    with pytest.raises(VaeZooError) as refusal:
        vae_zoo.load(path)
    assert f"error: {refusal.value}" == expected


def test_an_exception_chain_that_loops_ends_the_search_for_a_users_error():
    """Found: a changed checkpoint made eval.py hang; the one-line reporter followed an exception chain that
    looped back on itself (an exception re-raised while it was being handled) forever."""
    first, second = ValueError("first"), KeyError("second")
    first.__context__, second.__context__ = second, first
    assert cause_of_type(first, VaeZooError) is None
    found = VaeZooError("the user's line")
    second.__context__ = found
    found.__context__ = first
    assert cause_of_type(first, VaeZooError) is found


@pytest.mark.parametrize(
    ("override", "line"),
    [
        ("model.latent.dim=abc", "model.latent.dim='abc' must be an integer (NormalLatent's dim)"),
        ("+model.latent.dimm=3", "model.latent.dimm is not a setting of NormalLatent (its settings: dim, "),
        ("objective.beta=nan", "objective.beta=nan must be a finite number (ELBO's beta)"),
        ("model.encoder.hidden=[a]", "model.encoder.hidden=['a'] must be a list (an integer each)"),
        (
            "trainer.max_epochs=-5",
            "trainer: Trainer refused its settings: `max_epochs` must be a non-negative",
        ),
        ("trainer.precision=7", "trainer.precision=7 must be one of 64, 32, 16, 'transformer-engine'"),
        ("trainer.check_val_every_n_epoch=0", "trainer.check_val_every_n_epoch=0 must be >= 1"),
        (
            "+model.optimizer.betas=[2,3]",
            "model.optimizer: Adam refused its settings: Invalid beta parameter",
        ),
        ("model.optimizer.lr=abc", "model.optimizer.lr='abc' must be a finite number > 0"),
        ("eval.iw_samples=abc", "eval.iw_samples='abc' and eval.iw_chunk=100 must be integers >= 1"),
        ("seed=-1", "seed=-1 must be an integer from 0 to 4294967295"),
        ("model.latent.dim=${nowhere}", "model.latent.dim: Interpolation key 'nowhere' not found"),
        ("callbacks.model_checkpoint.monitor=abc", "callbacks.model_checkpoint.monitor=abc is not a metric"),
        (
            "callbacks.model_checkpoint.mode=abc",
            "BestAndLastCheckpoint refused its settings: `mode` can be min, max",
        ),
        (
            "scheduler=cosine model.scheduler.T_max=0",
            "model.scheduler: CosineAnnealingLR refused its settings: integer modulo by zero",
        ),
        ("init.checkpoint=-1", "init.checkpoint=-1 must be a string or null (InitialWeights's checkpoint)"),
    ],
)
def test_a_wrong_override_is_one_line(make_cfg, override, line):
    """Found: each reached a constructor's comparison, Lightning or torch, and left a Hydra traceback (the
    monitor, the validation interval and the cosine schedule's length only after the first epoch)."""
    cfg = make_cfg(*SMALL_RUN, "trainer.max_epochs=1", *override.split())
    status, message = script_outcome(lambda: _report_user_errors(train, cfg))
    assert status == 2 and line in message, message


def test_an_image_pillow_refuses_with_a_value_error_is_skipped(tmp_path):
    """Found: a TIFF header of impossible dimensions (under a .png name) raised Pillow's ValueError while the
    folder's sizes were read, a traceback instead of a skipped file."""
    from PIL import Image

    from vae_zoo.data.image_folder import ImageFolderDataModule

    for name in ("a.png", "b.png"):
        Image.new("L", (4, 4)).save(tmp_path / name)
    tiff = (  # a TIFF of 1x1 pixels whose width field was overwritten (its type a byte, not a long)
        b"II*\x00\x08\x00\x00\x00\x08\x00\x00\x01\x01\x00\x01\x00\x00\x00\x01\x00\x00\x00\x01\x01\x04\x00"
        b"\x01\x00\x00\x00\x01\x00\x00\x00\x03\x01\x03\x00\x01\x00\x00\x00\x01\x00\x00\x00\x06\x01\x03\x00"
        b"\x01\x00\x00\x00\x01\x00\x00\x00\x11\x01\x04\x00\x01\x00\x00\x00n\x00\x00\x00\x16\x01\x04\x00"
        b"\x01\x00\x00\x00\x01\x00\x00\x00\x17\x01\x04\x00\x01\x00\x00\x00\x01\x00\x00\x00\x1c\x01\x03\x00"
        b"\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00"
    )
    (tmp_path / "c.png").write_bytes(tiff)
    splits = ImageFolderDataModule(str(tmp_path), cache_dir=str(tmp_path / "cache")).load_splits()
    assert sum(len(images) for images in splits.values()) == 2


@pytest.mark.parametrize(
    ("content", "line"),
    [
        (b"{", "cannot be read as JSON (Expecting property name"),
        (b"\x80", "cannot be read as JSON ('utf-8' codec can't decode"),
        (b"0", "is not a mapping whose checkpoint is a path"),
        (b'{"checkpoint": 1}', "is not a mapping whose checkpoint is a path"),
    ],
)
def test_a_damaged_metrics_json_is_one_line_from_load(trained_run, tmp_path, content, line):
    """Found: ``vae_zoo.load(<run>)`` read the tested checkpoint's path from ``metrics.json`` without a
    check: JSONDecodeError, UnicodeDecodeError, AttributeError or TypeError."""
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "metrics.json").write_bytes(content)
    with pytest.raises(VaeZooError) as refused:
        vae_zoo.load(run)
    assert line in str(refused.value) and "metrics.json" in str(refused.value)
