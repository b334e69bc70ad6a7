"""VQ-VAE's moving-average codebook (``model.latent.codebook_update=ema``) checked with numbers: one step against the
appendix's update written out code by code, repeated steps against k-means, packed models' codebooks against each
model alone (a non-finite one keeping its own), two DDP processes against one process with the whole batch, the
training gradient against the commitment term written out by hand, and learning on MNIST (test_vector_quantized)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.conftest import (
    build_model,
    codebook_and_averages,
    encoder_outputs,
    flat_gradient,
    free_port,
    mnist_like,
)
from vae_zoo.latents.codebook_ema import move_codebook
from vae_zoo.packing.pack import pack

K, DIM, POSITIONS, DECAY, EPSILON = 7, 3, 5, 0.9, 1e-5


def state(seed: int, models: int | None = None) -> list[torch.Tensor]:
    return codebook_and_averages(seed, K, DIM, models)


def batch(seed: int, images: int = 6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return encoder_outputs(seed, images, POSITIONS, DIM, K)


def test_one_step_is_the_appendixs_moving_average_of_each_codes_outputs():
    codebook, counts, sums = state(0)
    encoded, codes, weights = batch(1)
    expected_counts, expected_sums = counts.double().clone(), sums.double().clone()
    for j in range(K):
        chosen = codes == j
        n_j = (weights[:, None].expand_as(codes)[chosen]).double().sum()
        s_j = (weights[:, None, None] * encoded).double()[chosen].sum(0)
        expected_counts[j] = DECAY * counts[j] + (1 - DECAY) * n_j
        expected_sums[j] = DECAY * sums[j] + (1 - DECAY) * s_j
    total = expected_counts.sum()
    smoothed = (expected_counts + EPSILON) / (total + K * EPSILON) * total
    move_codebook(codebook, counts, sums, encoded, codes, weights, DECAY, EPSILON)
    torch.testing.assert_close(counts, expected_counts.float())
    torch.testing.assert_close(sums, expected_sums.float())
    torch.testing.assert_close(codebook, (expected_sums / smoothed[:, None]).float())


def test_repeated_steps_on_fixed_outputs_converge_to_the_k_means_of_their_clusters():
    """Three clusters, a code started in each: every code moves to its cluster's mean (Lloyd's fixed point), its
    count to its cluster's size per batch."""
    generator = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0, 0.0], [5.0, 0.0, 0.0], [0.0, 5.0, 5.0]])
    sizes = torch.tensor([3, 5, 7])
    points = torch.cat([c + torch.randn(s, DIM, generator=generator) for c, s in zip(centres, sizes)])
    encoded = points.view(-1, 1, DIM)  # one position per "image"
    codebook, counts, sums = centres.clone(), torch.zeros(3), torch.zeros(3, DIM)
    for _ in range(200):
        codes = torch.cdist(encoded[:, 0], codebook).argmin(-1)[:, None]
        move_codebook(codebook, counts, sums, encoded, codes, None, 0.8, EPSILON)
    means = torch.stack([cluster.mean(0) for cluster in points.split(sizes.tolist())])
    torch.testing.assert_close(codebook, means, rtol=0, atol=1e-5)
    torch.testing.assert_close(counts, sizes.float(), rtol=1e-5, atol=0)


def test_packed_models_move_their_own_codebooks_and_a_nonfinite_batch_changes_nothing_of_its_model():
    codebooks, counts, sums = state(2, models=2)
    encoded, codes, weights = batch(3, images=4)  # two images of each model, in turn
    encoded[2, 0, 0] = math.nan  # model 1's batch is not finite
    before = [t.clone() for t in (codebooks, counts, sums)]
    move_codebook(codebooks, counts, sums, encoded, codes, weights, DECAY, EPSILON)
    alone = [t[0].clone() for t in before]
    move_codebook(*alone, encoded[:2], codes[:2], weights[:2], DECAY, EPSILON)
    for packed, own, old in zip((codebooks, counts, sums), alone, before):
        assert torch.equal(packed[0], own)
        assert torch.equal(packed[1], old[1])


def _ddp_step(rank: int, port: int, folder: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    codebook, counts, sums = state(4)
    encoded, codes, weights = batch(5)
    half = slice(3 * rank, 3 * rank + 3)  # each process its half of the batch
    move_codebook(codebook, counts, sums, encoded[half], codes[half], weights[half], DECAY, EPSILON)
    torch.save((codebook, counts, sums), f"{folder}/rank{rank}.pt")
    dist.destroy_process_group()


def test_under_ddp_every_process_moves_its_codebook_by_the_whole_batch(tmp_path):
    mp.spawn(_ddp_step, args=(free_port(), str(tmp_path)), nprocs=2)
    codebook, counts, sums = state(4)
    encoded, codes, weights = batch(5)
    move_codebook(codebook, counts, sums, encoded, codes, weights, DECAY, EPSILON)
    for rank in (0, 1):
        for ranked, whole in zip(torch.load(tmp_path / f"rank{rank}.pt"), (codebook, counts, sums)):
            torch.testing.assert_close(ranked, whole)


def ema_vae(seed: int = 0, objective: str = "elbo"):
    torch.manual_seed(seed)
    settings = {"positions": 4, "k": 8, "dim": 2, "codebook_update": "ema"}
    return build_model("vector_quantized", objective=objective, latent_settings=settings)


def test_the_codebook_is_a_buffer_moved_in_training_only_and_the_loss_keeps_the_commitment_term_alone():
    vae, x = ema_vae(), mnist_like(16, seed=0)
    model, objective = vae.model, vae.objective
    latent = model.latent
    assert "codebook" not in dict(model.named_parameters()) and "latent.codebook" in model.state_dict()
    with torch.no_grad():
        latent.codebook.normal_()
    before = [t.clone() for t in (latent.codebook, latent.code_counts, latent.code_sums)]
    loss, terms = objective(model, x)
    encoded = latent.head(model.features(x)).unflatten(-1, (4, 2))
    code = before[0][torch.cdist(encoded.detach(), before[0].expand(16, 8, 2)).argmin(-1)]
    commitment = 0.25 * (encoded - code).square().sum((-2, -1))
    by_hand = (model.nll(x, encoded + (code - encoded).detach()) + commitment).mean()
    torch.testing.assert_close(
        flat_gradient(model, loss), flat_gradient(model, by_hand), rtol=1e-4, atol=1e-6
    )
    torch.testing.assert_close(terms["vq_loss"], commitment.mean())
    codes = torch.cdist(encoded.detach(), before[0].expand(16, 8, 2)).argmin(-1)
    move_codebook(*before, encoded.detach(), codes, None, 0.99, 1e-5)
    for moved, expected in zip((latent.codebook, latent.code_counts, latent.code_sums), before):
        torch.testing.assert_close(moved, expected)
    moved = latent.codebook.clone()
    model.eval()
    with torch.no_grad():
        objective(model, x)
    assert torch.equal(latent.codebook, moved)


@pytest.mark.parametrize("objective", ["iwae", "elbo"])
def test_a_pack_moves_each_models_codebook_as_the_model_alone(objective):
    vaes = [ema_vae(seed, objective) for seed in (0, 1)]
    models = [vae.model for vae in vaes]
    packed = pack(models)
    objective = vaes[0].objective
    x = [mnist_like(8, seed=s) for s in (2, 3)]
    objective(packed, torch.cat(x))
    for n, model in enumerate(models):
        objective(model, x[n])
        for name in ("codebook", "code_counts", "code_sums"):
            torch.testing.assert_close(getattr(packed.latent, name)[n], getattr(model.latent, name))
