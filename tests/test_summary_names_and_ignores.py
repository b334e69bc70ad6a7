"""The small things a user sees: the model summary counts the FLOPs of one image's forward pass (and counting
them leaves training's random streams alone), run names tell encoder and decoder settings apart, and
build outputs (``pip wheel .``, ``mkdocs build``) are ignored by git."""

from __future__ import annotations

import subprocess

import torch
from pytorch_lightning.utilities.model_summary import ModelSummary
from torch import nn

from tests.conftest import ROOT, build_model
from vae_zoo.run_identity import short_keys


def test_the_summary_counts_two_flops_per_multiply_add_of_every_layer_for_one_image():
    model = build_model(hidden=(32,))
    expected = sum(2 * m.in_features * m.out_features for m in model.modules() if isinstance(m, nn.Linear))
    assert ModelSummary(model, max_depth=1).total_flops == expected > 0


def test_the_forward_pass_leaves_the_global_random_state_as_it_found_it():
    model = build_model(hidden=(32,))
    torch.manual_seed(0)
    x = torch.rand(4, 1, 28, 28).bernoulli()
    before = torch.get_rng_state()
    elbo = model(x)  # draws an exact posterior sample
    assert elbo.shape == (4,) and torch.isfinite(elbo).all()
    assert torch.equal(torch.get_rng_state(), before)


def test_run_names_use_the_shortest_key_ending_that_tells_overrides_apart(make_cfg):
    assert short_keys(["model.encoder.hidden", "model.decoder.hidden", "model.optimizer.lr", "seed"]) == {
        "model.encoder.hidden": "encoder.hidden",
        "model.decoder.hidden": "decoder.hidden",
        "model.optimizer.lr": "lr",
        "seed": "seed",
    }
    cfg = make_cfg(
        "model.encoder.hidden=[64]", "model.decoder.hidden=[64]", "model.optimizer.lr=0.0003", "seed=2"
    )
    assert cfg.logger.tensorboard.version == (
        "gaussian_vae,normal,pathwise,elbo,bernoulli,mnist,encoder.hidden=_64_,decoder.hidden=_64_,lr=0.0003,seed=2"
    )


def test_build_outputs_are_ignored_by_git():
    paths = ["build/lib/vae_zoo/cli.py", "dist/vae_zoo-0.1.0-py3-none-any.whl", "site/index.html"]
    ignored = subprocess.run(
        ["git", "check-ignore", *paths], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.split()
    assert ignored == paths
