"""A checkpoint is enough on its own: copied out of its run directory, eval.py gives the same test metrics and
sample.py the same pictures as in the run directory; without the data, sample.py still draws from the prior;
``data=`` evaluates it on another dataset; a checkpoint that carries no config and has no run directory is
one line."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from tests.conftest import FAST, ROOT, run_script
from tests.test_training import SHORT
from vae_zoo.cli import evaluate, sample
from vae_zoo.errors import VaeZooError

GRIDS = ("grids.n=16", "grids.pairs=3", "grids.steps=5")
IDENTITY = ("model", "latent", "estimator", "objective", "likelihood", "data", "seed")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, data_dir):
    run = tmp_path_factory.mktemp("trained") / "run"
    result = run_script(
        "train.py", "model=gamma_vae", f"paths.data_dir={data_dir}", f"hydra.run.dir={run}", *SHORT, *FAST
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run


def pictures(folder) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in folder.glob("*.png")}


def test_a_checkpoint_copied_out_of_its_run_evaluates_and_samples_as_in_its_run(run_dir, make_cfg, tmp_path):
    trained = json.loads((run_dir / "metrics.json").read_text())
    in_run = run_dir / "checkpoints" / "last.ckpt"
    alone = tmp_path / "shared" / "gamma.ckpt"
    alone.parent.mkdir()
    shutil.copy(in_run, alone)
    evaluated = {}
    for name, checkpoint in (("run", in_run), ("alone", alone)):
        cfg = make_cfg(
            f"ckpt_path={checkpoint}",
            "trainer.limit_test_batches=2",
            *FAST,
            output_dir=tmp_path / f"eval_{name}",
            config_name="eval",
        )
        evaluated[name] = evaluate(cfg)
        sample(
            make_cfg(
                f"ckpt_path={checkpoint}",
                *GRIDS,
                output_dir=tmp_path / f"sample_{name}",
                config_name="sample",
            )
        )
    for metric in ("test/elbo", "test/recon", "test/kl", "test/nll_iw"):
        assert evaluated["alone"][metric] == evaluated["run"][metric], metric
    assert {k: evaluated["alone"][k] for k in IDENTITY} == {k: trained[k] for k in IDENTITY}
    assert pictures(tmp_path / "sample_alone") == pictures(tmp_path / "sample_run")
    assert len(pictures(tmp_path / "sample_run")) == 4


def test_a_run_directory_evaluates_and_samples_as_the_checkpoint_its_test_metrics_came_from(
    run_dir, make_cfg, tmp_path
):
    """``eval.py ckpt_path=<run directory>`` reads the checkpoint its ``metrics.json`` names (as ``vae_zoo.load``)."""
    tested = json.loads((run_dir / "metrics.json").read_text())["checkpoint"]
    evaluated = {}
    for name, path in (("directory", run_dir), ("checkpoint", tested)):
        common = (f"ckpt_path={path}", "trainer.limit_test_batches=2", *FAST)
        evaluated[name] = evaluate(
            make_cfg(*common, output_dir=tmp_path / f"eval_{name}", config_name="eval")
        )
        sample(
            make_cfg(
                f"ckpt_path={path}", *GRIDS, output_dir=tmp_path / f"sample_{name}", config_name="sample"
            )
        )
    assert (
        evaluated["directory"] == evaluated["checkpoint"] and evaluated["directory"]["checkpoint"] == tested
    )
    assert pictures(tmp_path / "sample_directory") == pictures(tmp_path / "sample_checkpoint")


@pytest.mark.parametrize("script", ["eval", "sample"])
def test_no_checkpoint_given_is_one_line(script, make_cfg, tmp_path):
    with pytest.raises(
        VaeZooError, match=rf"^{script}.py needs a trained model: ckpt_path=<run directory> or "
    ):
        (evaluate if script == "eval" else sample)(make_cfg(output_dir=tmp_path, config_name=script))


def test_without_the_data_a_lone_checkpoint_still_gives_its_prior_samples(
    run_dir, make_cfg, tmp_path, capsys
):
    alone = tmp_path / "gamma.ckpt"
    shutil.copy(run_dir / "checkpoints" / "last.ckpt", alone)
    with_data = tmp_path / "with_data"
    sample(make_cfg(f"ckpt_path={alone}", *GRIDS, output_dir=with_data, config_name="sample"))
    (tmp_path / "empty").mkdir()
    cfg = make_cfg(
        f"ckpt_path={alone}",
        f"paths.data_dir={tmp_path / 'empty'}",
        "data.download=false",
        *GRIDS,
        output_dir=tmp_path / "no_data",
        config_name="sample",
    )
    sample(cfg)
    assert "sample: no test images (dataset files not found" in capsys.readouterr().out
    drawn = pictures(tmp_path / "no_data")
    assert set(drawn) == {"samples.png", "traversals.png"}  # traversals around the prior's median
    assert drawn["samples.png"] == pictures(with_data)["samples.png"]


def test_a_data_choice_evaluates_the_checkpoint_on_another_dataset(run_dir, make_cfg, tmp_path):
    cfg = make_cfg(
        f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
        "data=fashion_mnist",
        "trainer.limit_test_batches=1",
        *FAST,
        output_dir=tmp_path / "eval",
        config_name="eval",
    )
    fashion = evaluate(cfg)
    assert fashion["data"] == "fashion_mnist" and fashion["model"] == "gamma_vae"
    trained = json.loads((run_dir / "metrics.json").read_text())
    assert fashion["test/elbo"] != trained["test/elbo"]


def test_a_checkpoint_without_a_config_and_away_from_its_run_is_one_line(make_cfg, tmp_path):
    old = tmp_path / "old.ckpt"  # written at 48663a0, before checkpoints carried their run's config
    shutil.copy(
        ROOT / "tests" / "fixtures" / "runs_48663a0" / "gaussian_vae" / "checkpoints" / "last.ckpt", old
    )
    with pytest.raises(VaeZooError, match="carries none .*: eval.py needs the run directory"):
        evaluate(make_cfg(f"ckpt_path={old}", output_dir=tmp_path / "e", config_name="eval"))
