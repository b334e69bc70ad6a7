"""The Python API on a real short run: ``vae_zoo.train`` with the command line's overrides, ``vae_zoo.load`` of
its directory or checkpoint, and the loaded model's encode / decode / sample / reconstruct / log_likelihood."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from torch.distributions import Distribution

import vae_zoo
from vae_zoo.cli import evaluate
from vae_zoo.errors import VaeZooError
from vae_zoo.probabilistic_model import ProbabilisticModel
from vae_zoo.saved_run import read_saved_run

SHORT = (
    "model=gamma_vae",
    "model.latent.dim=4",
    "model.encoder.hidden=[16]",
    "model.decoder.hidden=[16]",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=5",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.accelerator=cpu",
    "data.eval_batch_size=50",
    "eval.iw_samples=20",
    "logger=csv",
)


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_dir):
    return vae_zoo.train(
        f"paths.data_dir={data_dir}", *SHORT, directory=tmp_path_factory.mktemp("api") / "run"
    )


def test_train_from_python_writes_an_ordinary_run_and_returns_its_metrics(run):
    assert (run.directory / "checkpoints" / "last.ckpt").is_file()
    assert (run.directory / ".hydra" / "config.yaml").is_file()
    assert run.metrics["model"] == "gamma_vae" and run.metrics["global_step"] == 5
    assert run.metrics["test/nll_iw"] > 0


def test_load_returns_the_probabilistic_model_in_eval_mode_with_its_api(run, data_dir):
    model = vae_zoo.load(run.directory)
    assert isinstance(model, ProbabilisticModel) and not model.training
    x = torch.rand(6, 1, 28, 28).bernoulli()
    q = model.encode(x)
    assert isinstance(q, Distribution) and q.batch_shape == (6,) and q.event_shape == (4,)
    z = q.sample((3,))
    p = model.decode(z)
    assert p.batch_shape == (3, 6) and p.event_shape == (1, 28, 28)
    assert ((p.mean >= 0) & (p.mean <= 1)).all()
    torch.testing.assert_close(p.log_prob(x), -model.nll(x, z))  # nats per image, per sample
    images = model.sample(5)
    assert images.shape == (5, 1, 28, 28) and set(images.unique().tolist()) <= {0.0, 1.0}
    assert model.reconstruct(x).shape == x.shape
    log_px = model.log_likelihood(x, k=10)
    assert log_px.shape == (6,) and (log_px < 0).all()


def test_log_likelihood_is_eval_pys_test_nll_iw_on_the_same_images_seed_and_k(run, make_cfg):
    checkpoint = run.directory / "checkpoints" / "last.ckpt"
    evaluation = ("trainer.accelerator=cpu", "trainer.limit_test_batches=1", "eval.iw_samples=20")
    evaluated = evaluate(make_cfg(f"ckpt_path={checkpoint}", *evaluation, config_name="eval"))
    model = vae_zoo.load(checkpoint)
    x = _first_test_batch(run)
    pl.seed_everything(0, verbose=False)  # eval.py's seed; on each batch it draws the ELBO's sample first
    model.negative_elbo_terms(x, lambda q: q.sample())
    assert (-model.log_likelihood(x, k=20).mean()).item() == evaluated["test/nll_iw"]


def _first_test_batch(run) -> torch.Tensor:
    """The run's first 50 test images as evaluation serves them (its data config, its fixed binarization)."""
    saved = read_saved_run(
        OmegaConf.create({"ckpt_path": str(run.directory / "checkpoints" / "last.ckpt")}), ""
    )
    return saved.datamodule().sample_images("test", 50)


def test_load_of_something_that_is_not_a_checkpoint_is_one_line(tmp_path):
    with pytest.raises(VaeZooError, match="holds no checkpoint") as empty:
        vae_zoo.load(tmp_path)
    not_a_checkpoint = tmp_path / "notes.ckpt"
    not_a_checkpoint.write_text("hello")
    with pytest.raises(VaeZooError) as text:
        vae_zoo.load(not_a_checkpoint)
    with pytest.raises(VaeZooError, match="does not exist"):
        vae_zoo.load(tmp_path / "missing")
    assert "\n" not in str(empty.value) and "\n" not in str(text.value)


def test_train_answers_bad_input_with_the_command_lines_one_line_and_writes_nothing(run, data_dir, tmp_path):
    with pytest.raises(
        VaeZooError, match=r"^estimator=gumbel_softmax does not pair with latent=gamma"
    ) as pairing:
        vae_zoo.train(
            f"paths.data_dir={data_dir}",
            "model=gamma_vae",
            "estimator=gumbel_softmax",
            directory=tmp_path / "a",
        )
    with pytest.raises(VaeZooError, match="^nonexistent_group: no such key in the config") as override:
        vae_zoo.train("nonexistent_group=x", directory=tmp_path / "b")
    assert "\n" not in str(pairing.value) and "\n" not in str(override.value)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    before = {p: p.stat().st_mtime_ns for p in run.directory.rglob("*") if p.is_file()}
    with pytest.raises(VaeZooError, match="already holds a finished run"):
        vae_zoo.train(f"paths.data_dir={data_dir}", *SHORT, directory=run.directory)
    assert {p: p.stat().st_mtime_ns for p in run.directory.rglob("*") if p.is_file()} == before


def test_train_packed_trains_the_jobs_that_pack_as_one_and_returns_each_run(data_dir, tmp_path, capsys):
    """Two seeds pack, a third job with another latent size trains alone, a fourth with a bad learning rate
    fails alone, and a fifth with a prior of no packed form trains unpacked: each job its ordinary directory
    and ``TrainedRun``, or its one line."""
    unpackable = ["seed=1", "model.prior._target_=tests.fixtures.counting_prior.CountingPrior"]
    jobs = (["seed=0"], ["seed=1"], ["seed=0", "model.latent.dim=3"], ["model.optimizer.lr=-1"], unpackable)
    capsys.readouterr()
    runs = vae_zoo.train_packed(*jobs, common=[f"paths.data_dir={data_dir}", *SHORT], directory=tmp_path)
    assert capsys.readouterr().out.count("packed: 2 jobs train as one model: ") == 1
    assert [run.metrics["seed"] for run in runs[:3]] == [0, 1, 0]
    assert runs[0].metrics["test/nll_iw"] != runs[1].metrics["test/nll_iw"]
    for n, run in enumerate(runs[:3]):
        assert run.directory == tmp_path / str(n) and (run.directory / ".hydra" / "config.yaml").is_file()
        assert (run.directory / "metrics.json").is_file() and vae_zoo.load(run.directory).models == 1
    assert OmegaConf.load(runs[2].directory / ".hydra" / "config.yaml").model.latent.dim == 3
    assert isinstance(runs[3], VaeZooError) and str(runs[3]).startswith("model.optimizer.lr=-1 must be")
    assert runs[4].metrics["seed"] == 1 and "prior.served" in vae_zoo.load(runs[4].directory).state_dict()
    with pytest.raises(VaeZooError, match="already holds a finished run"):
        vae_zoo.train_packed(["seed=0"], common=[f"paths.data_dir={data_dir}", *SHORT], directory=tmp_path)
