"""A run started from another run's weights (``init.checkpoint``), and a prior fitted after training
(``init.train=prior``): the weights taken exactly, every tensor outside the prior left bit for bit as it was while
the prior trains (a moving-average codebook's buffers too), and each wrong start refused in one line."""

from __future__ import annotations

import json

import pytest
import pytorch_lightning as pl
import torch

from tests.conftest import TINY, build_model, component, mnist_like, run_script
from vae_zoo.cli import build_datamodule_and_model, build_trainer, reseed
from vae_zoo.errors import VaeZooError
from vae_zoo.initial_weights import start_from_checkpoint
from vae_zoo.packing.pack import unpacked_state_dict
from vae_zoo.packing.packed_vae import PackedVAE
from vae_zoo.packing.train_pack import PackJob, build_pack

#: models with a learned p(z): the prior components, a family's learned logits, the codes' MADE, two layers' p(z1|z2)
LEARNED_PRIORS = {
    "mog": {"prior": component("prior", "mog")},
    "vamp": {"prior": component("prior", "vamp", components=4)},
    "learned_normal": {"prior": component("prior", "learned_normal")},
    "categorical": {"latent": "categorical", "estimator": "nvil", "latent_settings": {"prior": "learned"}},
    "bernoulli": {"latent": "bernoulli", "estimator": "disarm", "latent_settings": {"prior": "learned"}},
    "vq_made": {
        "latent": "vector_quantized",
        "latent_settings": {"prior": "autoregressive", "prior_hidden": 16, "codebook_update": "ema"},
    },
    "two_layer": {"latent": "two_layer", "latent_settings": {"dim": 8, "top": 4, "hidden": [8]}},
}


#: the VQ grid's conv nets on 3 batches of 32, 2 to validate and 2 to test, no logger
GRID_RUN = (
    "data.batch_size=32",
    "+trainer.limit_train_batches=3",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "data.eval_batch_size=50",
    "eval.iw_samples=1",
    "trainer.max_epochs=1",
    "trainer.deterministic=true",
    "trainer.accelerator=cpu",
    "logger=[]",
)


def saved(vae, path) -> str:
    torch.save({"state_dict": vae.state_dict()}, path)
    return str(path)


def trained_steps(vae, steps: int = 5) -> None:
    """``steps`` of the run's own optimizer (its parameter groups) on random binary images, in training mode."""
    optimizer = vae.configure_optimizers()
    vae.train()
    for step in range(steps):
        loss, _ = vae.objective(vae.model, mnist_like(32, step))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@pytest.mark.parametrize("name", sorted(LEARNED_PRIORS))
def test_fitting_the_prior_moves_its_parameters_alone(name, tmp_path):
    torch.manual_seed(0)
    trained = build_model(**LEARNED_PRIORS[name])
    trained_steps(trained)  # away from the initial weights, moving averages included
    start = {k: v.clone() for k, v in trained.state_dict().items()}
    torch.manual_seed(1)
    vae = build_model(**LEARNED_PRIORS[name])
    line = start_from_checkpoint({"checkpoint": saved(trained, tmp_path / "a.ckpt"), "train": "prior"}, vae)
    assert line.endswith("training the prior alone") and "afresh" not in line
    assert all(torch.equal(vae.state_dict()[k], v) for k, v in start.items())
    trained_steps(vae)
    assert not vae.model.latent.training and not vae.model.encoder.training
    assert all(module.training for module in vae.model.prior_modules())
    moved = [k for k, v in vae.state_dict().items() if not torch.equal(v, start[k])]
    assert moved and all(vae.model.is_prior_state(k) for k in moved), moved


def test_starting_from_a_checkpoint_takes_every_weight_and_trains_them_all(tmp_path):
    torch.manual_seed(0)
    trained = build_model(prior=component("prior", "mog"))
    torch.manual_seed(1)
    vae = build_model(prior=component("prior", "mog"))
    line = start_from_checkpoint({"checkpoint": saved(trained, tmp_path / "a.ckpt"), "train": "all"}, vae)
    assert line.endswith("training every parameter")
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in vae.state_dict().items())
    trained_steps(vae, 2)
    assert all(not torch.equal(v, trained.state_dict()[k]) for k, v in vae.state_dict().items())


def test_a_prior_of_another_size_starts_afresh_and_the_rest_is_taken(tmp_path):
    settings = {"prior": "autoregressive", "prior_hidden": 16}
    torch.manual_seed(0)
    trained = build_model("vector_quantized", latent_settings=settings)
    torch.manual_seed(1)
    vae = build_model("vector_quantized", latent_settings={**settings, "prior_hidden": 32})
    own = {k: v.clone() for k, v in vae.state_dict().items()}
    line = start_from_checkpoint({"checkpoint": saved(trained, tmp_path / "a.ckpt"), "train": "prior"}, vae)
    fresh = [k for k, v in own.items() if v.shape != trained.state_dict()[k].shape]
    assert fresh and all(k.startswith("latent.code_prior.") for k in fresh)
    assert f"the prior's {len(fresh)} start afresh (e.g. {min(fresh)})" in line
    for key, value in vae.state_dict().items():
        assert torch.equal(value, own[key] if key in fresh else trained.state_dict()[key])


def test_a_fresh_prior_starts_from_its_own_initial_weights(tmp_path):
    settings = {"prior": "autoregressive", "prior_hidden": 16}
    torch.manual_seed(0)
    trained = build_model("vector_quantized", latent_settings=settings)
    torch.manual_seed(1)
    vae = build_model("vector_quantized", latent_settings=settings)
    own = {k: v.clone() for k, v in vae.state_dict().items()}
    init = {"checkpoint": saved(trained, tmp_path / "a.ckpt"), "train": "prior", "fresh_prior": True}
    assert "the prior's 4 start afresh" in start_from_checkpoint(init, vae)
    for key, value in vae.state_dict().items():
        expected = own if key.startswith("latent.code_prior.") else trained.state_dict()
        assert torch.equal(value, expected[key]), key


def test_the_prior_of_another_kind_in_the_checkpoint_is_left_out(tmp_path):
    torch.manual_seed(0)
    trained = build_model("vector_quantized", latent_settings={"prior": "learned"})
    vae = build_model("vector_quantized", latent_settings={"prior": "autoregressive", "prior_hidden": 16})
    line = start_from_checkpoint({"checkpoint": saved(trained, tmp_path / "a.ckpt"), "train": "prior"}, vae)
    assert "afresh" in line and torch.equal(
        vae.state_dict()["latent.codebook"], trained.state_dict()["latent.codebook"]
    )


#: a mixture prior on the Gaussian; the Bernoulli's learned logits under NVIL (its baseline network frozen, its
#: running statistics kept as they were)
PRIOR_FITS = {
    "mog": ("prior=mog",),
    "nvil_learned_logits": ("model=bernoulli_vae", "estimator=nvil", "model.latent.prior=learned"),
}


def prior_fits(make_cfg, tmp_path, overrides, seeds) -> list:
    """For each seed, the config of a job fitting the prior of its own trained model (seed + 10, 5 steps)."""
    cfgs = []
    for seed in seeds:
        start = make_cfg(*TINY, *overrides, f"seed={seed + 10}")
        reseed(start)
        _, trained = build_datamodule_and_model(start)
        trained_steps(trained)
        path = saved(trained, tmp_path / f"trained_{seed}.ckpt")
        fit = (f"seed={seed}", f"init.checkpoint={path}", "init.train=prior", "+trainer.max_steps=20")
        cfgs.append(make_cfg(*TINY, *overrides, *fit))
    return cfgs


def fitted_losses(cfg, module, datamodule) -> torch.Tensor:
    """Each training step's loss (a pack's, one per model), and the module trained."""
    losses = []

    class Record(pl.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            packed = isinstance(module, PackedVAE)
            losses.append(module.losses.clone() if packed else module.step_output.loss.reshape(1))

    trainer = build_trainer(cfg, logging=False)
    trainer.callbacks.append(Record())
    trainer.fit(module, datamodule=datamodule)
    return torch.stack(losses)


@pytest.mark.parametrize("fit", sorted(PRIOR_FITS))
def test_a_pack_of_one_fits_the_prior_as_its_unpacked_run(fit, make_cfg, tmp_path):
    (cfg,) = prior_fits(make_cfg, tmp_path, PRIOR_FITS[fit], seeds=(3,))
    reseed(cfg)
    datamodule, alone = build_datamodule_and_model(cfg)
    start_from_checkpoint(cfg.init, alone)
    expected = fitted_losses(cfg, alone, datamodule)
    datamodule, packed = build_pack([PackJob(cfg)])
    torch.testing.assert_close(fitted_losses(cfg, packed, datamodule), expected, rtol=1e-6, atol=0)
    final = unpacked_state_dict(packed.model, 0)
    for key, value in alone.state_dict().items():
        torch.testing.assert_close(final[key], value, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("fit", sorted(PRIOR_FITS))
def test_each_model_of_a_pack_fits_its_prior_from_its_own_checkpoint_and_nothing_else_moves(
    fit, make_cfg, tmp_path
):
    """Two jobs, each from its own trained model: model n starts from its checkpoint exactly; after 20 steps every
    tensor outside its prior (running statistics too) is its checkpoint's bit for bit, and its prior moved."""
    cfgs = prior_fits(make_cfg, tmp_path, PRIOR_FITS[fit], seeds=(0, 1))
    starts = [tensors(cfg.init.checkpoint) for cfg in cfgs]
    datamodule, packed = build_pack([PackJob(cfg) for cfg in cfgs])
    for n, start in enumerate(starts):
        assert all(torch.equal(unpacked_state_dict(packed.model, n)[k], v) for k, v in start.items())
    assert not any(p.requires_grad for p in packed.model.encoder.parameters())
    fitted_losses(cfgs[0], packed, datamodule)
    prior = packed.model.is_prior_state
    for n, start in enumerate(starts):
        final = unpacked_state_dict(packed.model, n)
        assert all(torch.equal(final[k], v) for k, v in start.items() if not prior(k))
        assert any(not torch.equal(final[k], v) for k, v in start.items() if prior(k))


def refusal_of(init, vae=None) -> VaeZooError:
    with pytest.raises(VaeZooError) as error:
        start_from_checkpoint(init, vae if vae is not None else build_model())
    assert "\n" not in str(error.value)
    return error.value


def refused(init, vae=None) -> str:
    """The one-line refusal of ``init``, which names its fix."""
    message = str(refusal_of(init, vae))
    assert " -- " in message
    return message


def test_each_wrong_start_is_one_line(tmp_path):
    torch.manual_seed(0)
    plain = saved(build_model(), tmp_path / "plain.ckpt")
    assert "has none -- choose a learned prior" in refused({"checkpoint": plain, "train": "prior"})
    assert "init.train='last' must be one of 'all', 'prior'" in str(
        refusal_of({"checkpoint": plain, "train": "last"})
    )
    assert "init.checkpoint=-1 must be a string or null" in str(refusal_of({"checkpoint": -1}))
    assert "init.fresh_prior='yes' must be true or false" in str(refusal_of({"fresh_prior": "yes"}))
    assert "init.foo is not a setting" in refused({"foo": 1})
    assert "init=5 is not a group of settings" in refused(5)
    assert "set init.checkpoint=<its .ckpt file>" in refused({"checkpoint": None, "train": "prior"})
    assert "does not exist" in refused({"checkpoint": str(tmp_path / "none.ckpt"), "train": "all"})
    (tmp_path / "text.ckpt").write_text("not a checkpoint")
    assert "init.checkpoint=" in refused({"checkpoint": str(tmp_path / "text.ckpt")})
    wider = refused({"checkpoint": plain}, build_model(hidden=(64,)))
    assert "holds another model's weights" in wider and "e.g. encoder." in wider
    flow = saved(build_model(flow=component("flow", "planar")), tmp_path / "flow.ckpt")
    assert "e.g. flow." in refused({"checkpoint": flow})
    broken = build_model()
    with torch.no_grad():
        broken.model.decoder.net[-1].bias[0] = float("nan")
    assert "non-finite weights" in refused({"checkpoint": saved(broken, tmp_path / "nan.ckpt")})
    assert start_from_checkpoint({"checkpoint": None, "train": "all"}, build_model()) is None


def tensors(path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def test_a_vq_grids_pixelcnn_fitted_after_training_leaves_the_model_bit_for_bit(tmp_path, data_dir):
    """The paper's two stages on the command line: the prior fitted to the trained model's codes changes no other
    tensor, so the reconstruction term is the first run's, and its checkpoint evaluates; a packed sweep over
    seeds fits one prior per job the same way."""
    grid = ("experiment=vq_grid_mnist", "model.latent.codebook_update=ema", "model.latent.prior=pixelcnn")
    small = (*grid, *GRID_RUN, f"paths.data_dir={data_dir}")
    first, second = tmp_path / "first", tmp_path / "second"
    assert run_script("train.py", *small, f"hydra.run.dir={first}").returncode == 0
    from_first = f"init.checkpoint={first}/checkpoints/last.ckpt"
    result = run_script("train.py", *small, f"hydra.run.dir={second}", from_first, "init.train=prior")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "init: 67 tensors from" in result.stdout and "training the prior alone" in result.stdout
    before, after = tensors(first / "checkpoints/last.ckpt"), tensors(second / "checkpoints/last.ckpt")
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]) != key.startswith("latent.code_prior."), key
    metrics = [json.loads((run / "metrics.json").read_text()) for run in (first, second)]
    assert metrics[0]["test/recon"] == metrics[1]["test/recon"]
    assert metrics[0]["test/kl"] != metrics[1]["test/kl"]
    evaluation = tmp_path / "eval"
    tested = (
        "trainer.limit_test_batches=2",
        "data.eval_batch_size=50",
        "eval.iw_samples=1",
    )  # as the run tested
    evaluated = run_script("eval.py", f"ckpt_path={second}", f"hydra.run.dir={evaluation}", *tested)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert json.loads((evaluation / "metrics.json").read_text())["test/kl"] == metrics[1]["test/kl"]
    sweep = tmp_path / "sweep"
    packed = run_script(
        "train.py",
        "-m",
        "hydra/launcher=packed",
        *small,
        "seed=0,1",
        from_first,
        "init.train=prior",
        f"hydra.sweep.dir={sweep}",
    )
    assert packed.returncode == 0, packed.stderr[-2000:]
    assert "packed: 2 jobs train as one model" in packed.stdout
    assert packed.stdout.count("init: 67 tensors from") == 2
    for job in ("0", "1"):  # each job's prior fitted to the first run's codes, the model left as it was
        own = tensors(sweep / job / "checkpoints/last.ckpt")
        assert all(torch.equal(before[k], v) != k.startswith("latent.code_prior.") for k, v in own.items())
        assert (
            json.loads((sweep / job / "metrics.json").read_text())["test/recon"] == metrics[0]["test/recon"]
        )
