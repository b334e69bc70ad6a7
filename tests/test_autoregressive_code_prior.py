"""The autoregressive priors over a VQ-VAE's codes (``model.latent.prior=autoregressive``, a MADE, and
``model.latent.prior=pixelcnn``, a gated PixelCNN over the code grid) checked with numbers: each position's logits
depend on the earlier codes alone and (the PixelCNN's with no blind spot) on every one of them, the prior sums to
one over every code matrix, its draws come with their probabilities, it starts uniform, its KL is the codes'
negative log-probability with a gradient to the prior alone, a pack gives each model's images their own network,
it leaves the rest of the model and its training bit for bit as with the independent prior, and on MNIST it fits
the codes better than the independent prior."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn
from torch.distributions import kl_divergence

from tests.conftest import binarized_digits, build_model, train_steps
from vae_zoo.errors import ConfigError
from vae_zoo.latents.autoregressive_code_prior import AutoregressiveCodePrior, CodeMADE
from vae_zoo.latents.code_pixelcnn import CodePixelCNN
from vae_zoo.latents.vector_quantized import VectorQuantizedLatent
from vae_zoo.latents.vector_quantized_distribution import VectorQuantized, code_vectors, nearest_codes
from vae_zoo.packing.pack import stacked

NETWORKS = ("made", "pixelcnn")


def fresh(kind: str, height: int, width: int, k: int) -> nn.Module:
    """A MADE over ``height * width`` positions or a PixelCNN over the ``height x width`` grid, as built (reaching
    every earlier position: 64 hidden units, or ``max(height, width) - 1`` layers)."""
    if kind == "made":
        return CodeMADE(height * width, k, 64)
    return CodePixelCNN(height, width, k, channels=8, layers=max(height, width, 2) - 1)


def network(kind: str, height: int, width: int, k: int, seed: int = 0) -> nn.Module:
    """``fresh``'s network with every weight drawn (the output's too, which training moves from zero)."""
    torch.manual_seed(seed)
    drawn = fresh(kind, height, width, k)
    with torch.no_grad():
        for parameter in drawn.parameters():
            parameter.normal_()
    return drawn


@pytest.mark.parametrize("kind", NETWORKS)
@pytest.mark.parametrize(("height", "width"), [(1, 5), (4, 5)])
def test_each_positions_logits_depend_on_every_earlier_code_and_on_no_other(kind, height, width):
    positions = height * width
    drawn = network(kind, height, width, 3)
    codes = torch.randint(0, 3, (6, positions), generator=torch.Generator().manual_seed(1))
    logits = drawn(codes)
    for position in range(positions):
        changed = codes.clone()
        changed[:, position] = (changed[:, position] + 1) % 3
        moved = (drawn(changed) - logits).abs().amax((0, 2))
        assert torch.equal(moved[: position + 1], torch.zeros(position + 1)), position
        assert (moved[position + 1 :] > 0).all(), position


@pytest.mark.parametrize("kind", NETWORKS)
def test_the_prior_sums_to_one_over_every_code_matrix(kind):
    height, width, k = 2, 2, 3
    codebook = torch.randn(k, 2)
    prior = AutoregressiveCodePrior(network(kind, height, width, k), codebook)
    every = torch.tensor(list(itertools.product(range(k), repeat=height * width)))
    total = prior.log_prob(code_vectors(every, codebook)).logsumexp(0)
    torch.testing.assert_close(total, torch.tensor(0.0), rtol=0, atol=1e-5)
    assert prior.log_prob(torch.randn(height * width, 2)) == -math.inf  # off the codebook


@pytest.mark.parametrize("kind", NETWORKS)
def test_the_prior_draws_each_code_matrix_with_its_probability(kind):
    positions, k, draws = 2, 3, 40_000
    codebook = torch.randn(k, 2, generator=torch.Generator().manual_seed(2))
    prior = AutoregressiveCodePrior(network(kind, 1, positions, k, seed=3), codebook)
    torch.manual_seed(0)
    z = prior.sample((draws,))
    assert z.shape == (draws, positions, 2) and prior.support.check(z).all()
    codes = nearest_codes(z, codebook)
    frequencies = torch.bincount(codes[:, 0] * k + codes[:, 1], minlength=k * k) / draws
    every = torch.tensor(list(itertools.product(range(k), repeat=positions)))
    probabilities = prior.log_prob(code_vectors(every, codebook)).exp()
    standard_error = (probabilities * (1 - probabilities) / draws).sqrt()
    assert ((frequencies - probabilities).abs() < 4 * standard_error + 1e-4).all()


@pytest.mark.parametrize("kind", NETWORKS)
def test_it_starts_as_the_uniform_prior_and_its_kl_is_the_codes_negative_log_probability(kind):
    torch.manual_seed(0)
    height, width, k = 2, 2, 8
    codebook = torch.randn(k, 3)
    encoded = torch.randn(5, height * width, 3, requires_grad=True)
    q = VectorQuantized(encoded, codebook)
    start = AutoregressiveCodePrior(fresh(kind, height, width, k), codebook)
    torch.testing.assert_close(kl_divergence(q, start), torch.full((5,), height * width * math.log(k)))
    prior = AutoregressiveCodePrior(network(kind, height, width, k), codebook)
    kl = kl_divergence(q, prior)
    torch.testing.assert_close(kl, -prior.log_prob(q.sample()))
    assert torch.autograd.grad(kl.sum(), encoded, allow_unused=True)[0] is None
    assert all(g.abs().sum() > 0 for g in torch.autograd.grad(kl.sum(), list(prior.network.parameters())))


@pytest.mark.parametrize("kind", NETWORKS)
def test_a_pack_gives_each_models_images_their_own_conditionals(kind):
    networks = [network(kind, 2, 3, 4, seed) for seed in (0, 1)]
    packed, _ = stacked(networks)  # the MADE's weights stacked, the PixelCNN's convolutions grouped
    # three images each, in turn, under two sample rows
    codes = torch.randint(0, 4, (2, 6, 6), generator=torch.Generator().manual_seed(4))
    logits = packed(codes)
    for n, alone in enumerate(networks):
        torch.testing.assert_close(logits[:, 3 * n : 3 * n + 3], alone(codes[:, 3 * n : 3 * n + 3]))


def vq(prior: str, seed: int = 0):
    """A small VQ-VAE with ``prior``: the MADE and the independent priors over 4 positions of an MLP's, the PixelCNN
    over a conv encoder's 7 x 7 grid (the independent prior too, for comparison, with ``grid`` in its name)."""
    torch.manual_seed(seed)
    if prior.endswith("grid") or prior == "pixelcnn":
        return build_model(
            "vector_quantized",
            latent_settings={
                "grid": True,
                "positions": 49,
                "prior": prior.removesuffix("_grid"),
                "prior_channels": 16,
            },
            encoder={"_target_": "vae_zoo.nets.conv.ConvEncoder", "channels": [16, 32], "grid": True},
            decoder={"_target_": "vae_zoo.nets.conv.ConvDecoder", "channels": [32, 16], "grid": True},
        )
    return build_model(
        "vector_quantized", hidden=(64,), latent_settings={"positions": 4, "k": 8, "dim": 2, "prior": prior}
    )


@pytest.mark.parametrize(
    ("independent", "prior"), [("learned", "autoregressive"), ("learned_grid", "pixelcnn")]
)
def test_the_rest_of_the_model_starts_as_with_the_independent_prior(independent, prior):
    learned, autoregressive = vq(independent).model, vq(prior).model
    shared = {k: v for k, v in learned.state_dict().items() if k != "latent.prior_logits"}
    mine = {k: v for k, v in autoregressive.state_dict().items() if not k.startswith("latent.code_prior.")}
    assert shared.keys() == mine.keys() and all(torch.equal(shared[k], mine[k]) for k in shared)


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"prior": "pixelcnn"}, "model.latent.prior=pixelcnn reads the codes as a grid"),
        ({"prior": "pixelcnn", "grid": True, "positions": 4}, "model.latent.prior=pixelcnn reads"),
        ({"grid": True, "positions": 4, "grid_shape": (2, 3)}, "model.latent.positions=6"),
        ({"prior": "autoregressive", "prior_hidden": 0}, "model.latent.prior_hidden=0"),
        ({"prior": "pixelcnn", "prior_layers": 0}, "model.latent.prior_layers=0"),
    ],
)
def test_bad_prior_settings_are_refused_in_one_line(settings, named):
    with pytest.raises(ConfigError) as refused:
        VectorQuantizedLatent(8, **settings)
    assert named in str(refused.value).replace("'", "") and "\n" not in str(refused.value)


@pytest.mark.parametrize(
    ("independent", "prior"), [("learned", "autoregressive"), ("learned_grid", "pixelcnn")]
)
def test_training_is_unchanged_and_the_autoregressive_prior_fits_the_codes_better(
    data_dir, independent, prior
):
    """The same 200 steps on real digits with each prior: the encoder, codebook and decoder move bit for bit alike
    (the KL's gradient reaches the prior alone), and the autoregressive prior's KL on held-out digits is below the
    independent prior's (the MADE's over 4 positions, the PixelCNN's over the 7 x 7 grid)."""
    train, test = binarized_digits(data_dir)
    kls, states = {}, {}
    for name in (independent, prior):
        vae = vq(name)
        train_steps(vae, train)
        with torch.no_grad():
            kls[name] = vae.model.kl(vae.model.posterior(test)).mean()
        states[name] = {k: v for k, v in vae.model.state_dict().items() if "prior" not in k}
    assert all(torch.equal(states[independent][k], states[prior][k]) for k in states[independent])
    assert kls[prior] < kls[independent] - 0.5, kls
