"""Dead-code restarts of VQ-VAE's moving-average codebook (``model.latent.restart_below``) checked with numbers: the
codes below the threshold restarted at the batch's encoder outputs and the others moved as without restarts, the
outputs drawn in proportion to their images' weights, packed models restarted at their own outputs (a non-finite
one keeping its codebook), two DDP processes left with one codebook, and on MNIST's code grid, most codes in use
where without restarts few are."""

from __future__ import annotations

import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.conftest import (
    binarized_digits,
    build_model,
    codebook_and_averages,
    encoder_outputs,
    free_port,
    train_steps,
)
from vae_zoo.errors import ConfigError
from vae_zoo.latents.codebook_ema import move_codebook
from vae_zoo.latents.codebook_restarts import restart_dead_codes
from vae_zoo.latents.vector_quantized import VectorQuantizedLatent

K, DIM, POSITIONS, DECAY, EPSILON, THRESHOLD = 7, 3, 5, 0.9, 1e-5, 1.0


def state(seed: int, models: int | None = None) -> list[torch.Tensor]:
    return codebook_and_averages(seed, K, DIM, models)


def batch(seed: int, images: int = 6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return encoder_outputs(seed, images, POSITIONS, DIM, K)


def step(codebook_state, encoded, codes, weights, restart: bool) -> None:
    moved = move_codebook(*codebook_state, encoded, codes, weights, DECAY, EPSILON)
    if restart:
        restart_dead_codes(*codebook_state, encoded, weights, THRESHOLD, moved)


def test_codes_below_the_threshold_restart_at_the_batchs_outputs_and_the_others_move_as_without():
    encoded, codes, weights = batch(1)
    plain, restarted = state(0), state(0)
    step(plain, encoded, codes, weights, restart=False)
    step(restarted, encoded, codes, weights, restart=True)
    dead = plain[1] < THRESHOLD
    assert 0 < dead.sum() < K
    rows = encoded.reshape(-1, DIM)
    for j in range(K):
        if dead[j]:
            assert (rows == restarted[0][j]).all(1).any()  # exactly one of the batch's outputs
            assert restarted[1][j] == THRESHOLD and torch.equal(restarted[2][j], THRESHOLD * restarted[0][j])
        else:
            for after, before in zip(restarted, plain):
                assert torch.equal(after[j], before[j])


def test_an_output_is_drawn_in_proportion_to_its_images_weight():
    """4,000 dead codes restarted at once: each image's share of them within 4 standard errors of its weight's
    share, and an image of weight 0 never drawn."""
    codes_, images = 4000, 4
    encoded = torch.arange(images * 2 * DIM, dtype=torch.float32).view(images, 2, DIM)  # distinct rows
    weights = torch.tensor([0.1, 0.0, 0.3, 0.6])
    codebook, counts, sums = torch.zeros(codes_, DIM), torch.zeros(codes_), torch.zeros(codes_, DIM)
    torch.manual_seed(0)
    restart_dead_codes(codebook, counts, sums, encoded, weights, THRESHOLD, torch.tensor([True]))
    image_of_code = (codebook[:, None, :] == encoded.view(-1, DIM)).all(-1).float().argmax(1) // 2
    shares = torch.bincount(image_of_code, minlength=images).float() / codes_
    expected = weights / weights.sum()
    assert shares[1] == 0
    assert ((shares - expected).abs() <= 4 * (expected * (1 - expected) / codes_).sqrt() + 1e-9).all(), shares


def test_packed_models_restart_at_their_own_outputs_and_a_nonfinite_one_keeps_its_codebook():
    encoded, codes, weights = batch(3, images=4)  # two images of each model, in turn
    encoded[2, 0, 0] = math.nan  # model 1's batch is not finite
    packed = state(2, models=2)
    before = [t.clone() for t in packed]
    torch.manual_seed(5)
    step(packed, encoded, codes, weights, restart=True)
    own_rows = encoded[:2].reshape(-1, DIM)
    dead = packed[1][0] == THRESHOLD
    assert dead.any()
    assert all((own_rows == code).all(1).any() for code in packed[0][0][dead])
    for after, old in zip(packed, before):
        assert torch.equal(after[1], old[1])
    alone, one = state(2, models=2), state(2, models=2)
    alone = [t[0].clone() for t in alone]
    one = [t[:1].clone() for t in one]
    for values in (alone, one):  # a pack of one draws as the model alone
        torch.manual_seed(5)
        step(values, encoded[:2], codes[:2], weights[:2], restart=True)
    for unpacked, of_one in zip(alone, one):
        assert torch.equal(unpacked, of_one[0])


def _ddp_restart(rank: int, port: int, folder: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    codebook_state = state(4)
    encoded, codes, weights = batch(5)
    torch.manual_seed(rank)  # each process its own draws, as its own seed would give
    half = slice(3 * rank, 3 * rank + 3)
    step(codebook_state, encoded[half], codes[half], weights[half], restart=True)
    torch.save(codebook_state, f"{folder}/rank{rank}.pt")
    dist.destroy_process_group()


def test_under_ddp_every_process_keeps_the_codebook_restarted_at_process_0s_outputs(tmp_path):
    mp.spawn(_ddp_restart, args=(free_port(), str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in (0, 1)]
    for values_0, values_1 in zip(*ranks):
        assert torch.equal(values_0, values_1)
    encoded, _, _ = batch(5)
    codebook, counts, _ = ranks[0]
    restarted = codebook[counts == THRESHOLD]
    assert len(restarted) and all((encoded[:3].reshape(-1, DIM) == code).all(1).any() for code in restarted)


@pytest.mark.parametrize("bad", [{"restart_below": -1.0}, {"restart_below": 1.0, "codebook_update": "loss"}])
def test_a_restart_threshold_below_0_or_without_moving_averages_is_one_line(bad):
    with pytest.raises(ConfigError, match=r"^model\.latent\.restart_below=-?1\.0 must be >= 0, and 0 unless"):
        VectorQuantizedLatent(8, **bad)


def test_on_mnists_code_grid_restarts_put_several_times_as_many_codes_in_use(data_dir):
    """``experiment=vq_grid_mnist``'s networks, smaller, 200 steps with moving averages: most of the 49 positions
    are background, and without restarts the test images use a few of the 64 codes; with restarts at 1 (Jukebox's
    threshold) more than three times as many, and the bound is no worse."""
    train, test = binarized_digits(data_dir)
    used, bound = {}, {}
    for restart_below in (0.0, 1.0):
        torch.manual_seed(0)
        vae = build_model(
            "vector_quantized",
            latent_settings={
                "grid": True,
                "positions": 49,
                "codebook_update": "ema",
                "restart_below": restart_below,
            },
            encoder={"_target_": "vae_zoo.nets.conv.ConvEncoder", "channels": [16, 32], "grid": True},
            decoder={"_target_": "vae_zoo.nets.conv.ConvDecoder", "channels": [32, 16], "grid": True},
        )
        train_steps(vae, train)
        with torch.no_grad():
            bound[restart_below] = vae.model(test).mean()
            used[restart_below] = vae.model.posterior(test).codes.unique().numel()
    assert used[1.0] > 3 * used[0.0] and used[0.0] < 16, used
    assert bound[1.0] < bound[0.0] + 1, bound
