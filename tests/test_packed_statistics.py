"""Packed and unpacked training agree in distribution: eight seeds trained as one pack against the same eight
seeds trained one by one, three (short) epochs on real MNIST, for four presets. A packed model starts from its
seed's weights and data but draws its sampling noise from the pack's stream, so the two test/elbo means may
differ by noise alone: they must agree within two standard errors of the difference of the means."""

from __future__ import annotations

import math
import statistics

import pytest

from vae_zoo.cli import train
from vae_zoo.packing.train_pack import PackJob, train_pack

SEEDS = range(8)
SHORT = (
    "model.encoder.hidden=[64]",
    "model.decoder.hidden=[64]",
    "trainer.max_epochs=3",
    "trainer.limit_train_batches=15",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=2",
    "data.eval_batch_size=250",
    "eval.iw_samples=4",
    "trainer.accelerator=cpu",
    "trainer.deterministic=true",
    "logger=[]",
    "~callbacks.image_grids",
    "~callbacks.latent_maps",
    "~callbacks.progress_bar",
)
PRESETS = {
    "gaussian": ("model=gaussian_vae",),
    "categorical_annealed": (
        "model=gumbel_vae",
        "callbacks.temperature.every_n_steps=5",
        "callbacks.temperature.rate=0.01",
    ),
    "gamma": ("model=gamma_vae",),
    "bernoulli_disarm": ("model=bernoulli_vae",),
}


@pytest.mark.parametrize("preset", PRESETS)
def test_eight_seeds_packed_and_unpacked_agree_within_two_standard_errors(preset, make_cfg, tmp_path):
    overrides = (*SHORT, *PRESETS[preset])
    alone = [
        train(make_cfg(*overrides, f"seed={seed}", output_dir=tmp_path / f"alone{seed}"))["test/elbo"]
        for seed in SEEDS
    ]
    jobs = [
        PackJob(make_cfg(*overrides, f"seed={seed}", output_dir=tmp_path / f"packed{seed}")) for seed in SEEDS
    ]
    packed = [result["test/elbo"] for result in train_pack(jobs)]
    difference = statistics.mean(packed) - statistics.mean(alone)
    error = math.sqrt((statistics.variance(packed) + statistics.variance(alone)) / len(SEEDS))
    assert abs(difference) <= 2 * error, (preset, packed, alone)
    assert packed != alone  # the noise differs: the pack is not a copy of the unpacked runs
