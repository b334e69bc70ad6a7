"""Every option of every config group composes, and the documented override names exist."""

from __future__ import annotations

import os
import re

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from vae_zoo.cli import NVML_CHECK, build_trainer
from vae_zoo.compose import compose_config
from vae_zoo.composition_errors import refuse_uncomposable
from vae_zoo.config_groups import CONFIG_DIR, groups, options

GROUPS = groups()
OPTIONS = [(group, f.stem) for group in GROUPS for f in sorted((CONFIG_DIR / group).glob("*.yaml"))]


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes_and_resolves(group, option, tmp_path):
    cfg = compose_config([f"{group}={option}"], tmp_path)
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves


@pytest.mark.parametrize("option", sorted(f.stem for f in (CONFIG_DIR / "trainer").glob("*.yaml")))
def test_trainer_options_build_a_trainer_here(option, tmp_path):
    if option == "gpu":
        pytest.importorskip("torch").cuda.is_available() or pytest.skip("trainer=gpu needs a GPU")
    cfg = compose_config([f"trainer={option}", "logger=csv"], tmp_path)
    trainer = build_trainer(cfg)
    assert trainer.max_epochs == cfg.trainer.max_epochs


def test_default_trainer_is_32_bit_on_cpu_and_mixed_on_gpu(tmp_path):
    import torch

    precision = compose_config([], tmp_path).trainer.precision
    assert precision == (
        ("bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed")
        if torch.cuda.is_available()
        else "32-true"
    )


def test_documented_overrides_exist(tmp_path):
    cfg = compose_config(
        [
            "paths.data_dir=/x",
            "data.batch_size=64",
            "trainer.max_epochs=3",
            "seed=7",
            "eval.iw_samples=5",
            "ckpt_path=/c.ckpt",
        ],
        tmp_path,
    )
    assert (cfg.data.data_dir, cfg.data.batch_size, cfg.trainer.max_epochs) == ("/x", 64, 3)
    assert (cfg.seed, cfg.data.seed, cfg.eval.iw_samples, cfg.ckpt_path) == (7, 7, 5, "/c.ckpt")


def test_data_dir_defaults_to_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_ZOO_DATA_DIR", "/somewhere/data")
    assert compose_config([], tmp_path).paths.data_dir == "/somewhere/data"
    monkeypatch.delenv("VAE_ZOO_DATA_DIR")
    assert compose_config([], tmp_path).paths.data_dir == "./data"


@pytest.mark.parametrize("encoder", ["mlp", "conv"])
@pytest.mark.parametrize("decoder", ["mlp", "conv"])
def test_model_builds_from_any_encoder_decoder_pair(encoder, decoder, tmp_path):
    import torch

    cfg = compose_config([f"encoder={encoder}", f"decoder={decoder}"], tmp_path)
    model = instantiate(
        OmegaConf.to_container(cfg.model, resolve=True),
        input_shape=[1, 28, 28],
        _recursive_=False,
        _convert_="all",
    )
    recon, kl = model.model.negative_elbo_terms(torch.rand(4, 1, 28, 28).bernoulli(), lambda q: q.rsample())
    assert recon.shape == kl.shape == (4,)


@pytest.mark.parametrize(
    ("preset", "latent", "estimator"),
    [
        ("gaussian_vae", "normal", "pathwise"),
        ("gumbel_vae", "categorical", "gumbel_softmax"),
        ("gamma_vae", "gamma", "implicit"),
    ],
)
def test_model_presets_choose_latent_and_estimator_that_the_command_line_can_override(
    preset, latent, estimator, tmp_path
):
    cfg = compose_config([f"model={preset}"], tmp_path)
    assert cfg.model._target_ == "vae_zoo.models.VAE"
    assert cfg.model.latent == compose_config([f"latent={latent}"], tmp_path).model.latent
    assert cfg.model.estimator == compose_config([f"estimator={estimator}"], tmp_path).model.estimator
    assert ("temperature" in cfg.callbacks) == (preset == "gumbel_vae")
    overridden = compose_config([f"model={preset}", "latent=gamma", "estimator=score_function"], tmp_path)
    assert overridden.model.latent._target_ == "vae_zoo.latents.GammaLatent"
    assert overridden.model.estimator._target_ == "vae_zoo.estimators.ScoreFunctionEstimator"


def test_objective_is_a_top_level_group_set_as_objective_dot_key(tmp_path):
    cfg = compose_config(["objective=iwae", "objective.k=7"], tmp_path)
    assert (cfg.objective._target_, cfg.objective.k) == ("vae_zoo.objectives.IWAE", 7)
    assert compose_config([], tmp_path).objective._target_ == "vae_zoo.objectives.ELBO"


@pytest.mark.skipif(torch.cuda.device_count() > 0, reason="the probe is kept where CUDA devices exist")
def test_building_a_trainer_without_cuda_devices_drops_lightnings_per_step_nvml_probe(tmp_path, monkeypatch):
    monkeypatch.setenv(NVML_CHECK, "1")  # what importing Lightning sets; torch then asks NVML on every call
    build_trainer(compose_config(["trainer=cpu"], tmp_path))
    assert NVML_CHECK not in os.environ  # torch's ordinary check, whose answer it caches
    assert not torch.cuda.is_available()


def test_callbacks_none_means_no_checkpoints_and_no_progress_bar(tmp_path):
    trainer = build_trainer(compose_config(["callbacks=none", "logger=csv"], tmp_path))
    assert trainer.checkpoint_callback is None and trainer.progress_bar_callback is None
    trainer = build_trainer(compose_config(["logger=csv"], tmp_path))
    assert trainer.checkpoint_callback is not None and trainer.progress_bar_callback is not None


def test_the_help_opens_with_calls_that_compose_and_names_every_preset(capsys):
    """``python train.py --help`` (``hydra.help.header``): each of its train.py lines composes, and its list of
    presets is ``conf/model/``'s."""
    header = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "hydra" / "default.yaml"))["help"]["header"]
    calls = [line.split("#")[0].split()[2:] for line in header.splitlines() if "python train.py" in line]
    assert len(calls) >= 4
    for argv in calls:
        refuse_uncomposable("train", argv)
    assert capsys.readouterr().err == ""
    presets = re.search(r"# a preset: (.*)", header).group(1).split()
    assert sorted(presets) == list(options("model"))


def test_the_getting_started_train_lines_compose(capsys):
    """Every ``python train.py ...`` line of docs/getting-started.md composes (a renamed key or option fails)."""
    text = (CONFIG_DIR.parents[1] / "docs" / "getting-started.md").read_text()
    calls = [
        line.split("#")[0].split()[2:] for line in text.splitlines() if line.startswith("python train.py")
    ]
    assert len(calls) >= 10
    for argv in calls:
        refuse_uncomposable("train", argv)
    assert capsys.readouterr().err == ""
