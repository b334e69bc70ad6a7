"""The autoregressive prior over a VQ-VAE's codes (``model.latent.prior=autoregressive``) checked with numbers: each
position's logits depend on the earlier codes alone, the prior sums to one over every code matrix, its draws come
with their probabilities, it starts uniform, its KL is the codes' negative log-probability with a gradient to the
prior alone, it leaves the rest of the model and its training bit for bit as with the independent prior, and on
MNIST it fits the codes better than the independent prior."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch.distributions import kl_divergence

from tests.conftest import binarized_digits, build_model, train_steps
from vae_zoo.errors import ConfigError
from vae_zoo.latents.autoregressive_code_prior import AutoregressiveCodePrior, CodeMADE
from vae_zoo.latents.vector_quantized import VectorQuantizedLatent
from vae_zoo.latents.vector_quantized_distribution import VectorQuantized, code_vectors, nearest_codes


def made(positions: int, k: int, seed: int = 0, hidden: int = 16) -> CodeMADE:
    """A MADE with every weight drawn (the output's too, which training moves from zero)."""
    torch.manual_seed(seed)
    network = CodeMADE(positions, k, hidden)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.normal_()
    return network


def test_each_positions_logits_depend_on_the_earlier_codes_only():
    network = made(5, 4)
    codes = torch.randint(0, 4, (6, 5), generator=torch.Generator().manual_seed(1))
    logits = network(codes)
    for position in range(5):
        changed = codes.clone()
        changed[:, position] = (changed[:, position] + 1) % 4
        moved = (network(changed) - logits).abs().amax((0, 2))
        assert torch.equal(moved[: position + 1], torch.zeros(position + 1)), position
        assert (moved[position + 1 :] > 0).all(), position


def test_the_prior_sums_to_one_over_every_code_matrix():
    positions, k = 3, 4
    codebook = torch.randn(k, 2)
    prior = AutoregressiveCodePrior(made(positions, k), codebook)
    every = torch.tensor(list(itertools.product(range(k), repeat=positions)))
    total = prior.log_prob(code_vectors(every, codebook)).logsumexp(0)
    torch.testing.assert_close(total, torch.tensor(0.0), rtol=0, atol=1e-5)
    assert prior.log_prob(torch.randn(positions, 2)) == -math.inf  # off the codebook


def test_the_prior_draws_each_code_matrix_with_its_probability():
    positions, k, draws = 2, 3, 40_000
    codebook = torch.randn(k, 2, generator=torch.Generator().manual_seed(2))
    prior = AutoregressiveCodePrior(made(positions, k, seed=3), codebook)
    torch.manual_seed(0)
    z = prior.sample((draws,))
    assert z.shape == (draws, positions, 2) and prior.support.check(z).all()
    codes = nearest_codes(z, codebook)
    frequencies = torch.bincount(codes[:, 0] * k + codes[:, 1], minlength=k * k) / draws
    every = torch.tensor(list(itertools.product(range(k), repeat=positions)))
    probabilities = prior.log_prob(code_vectors(every, codebook)).exp()
    standard_error = (probabilities * (1 - probabilities) / draws).sqrt()
    assert ((frequencies - probabilities).abs() < 4 * standard_error + 1e-4).all()


def test_it_starts_as_the_uniform_prior_and_its_kl_is_the_codes_negative_log_probability():
    torch.manual_seed(0)
    positions, k = 4, 8
    codebook = torch.randn(k, 3)
    encoded = torch.randn(5, positions, 3, requires_grad=True)
    q = VectorQuantized(encoded, codebook)
    fresh = AutoregressiveCodePrior(CodeMADE(positions, k, 16), codebook)
    torch.testing.assert_close(kl_divergence(q, fresh), torch.full((5,), positions * math.log(k)))
    prior = AutoregressiveCodePrior(made(positions, k), codebook)
    kl = kl_divergence(q, prior)
    torch.testing.assert_close(kl, -prior.log_prob(q.sample()))
    assert torch.autograd.grad(kl.sum(), encoded, allow_unused=True)[0] is None
    assert all(g.abs().sum() > 0 for g in torch.autograd.grad(kl.sum(), list(prior.made.parameters())))


def test_a_pack_gives_each_models_images_their_own_conditionals():
    networks = [made(3, 4, seed) for seed in (0, 1)]
    packed = made(3, 4)
    with torch.no_grad():
        for name, _ in packed.named_parameters():
            setattr(packed, name, torch.nn.Parameter(torch.stack([getattr(m, name) for m in networks])))
    codes = torch.randint(
        0, 4, (6, 3), generator=torch.Generator().manual_seed(4)
    )  # three images each, in turn
    logits = packed(codes)
    for n, network in enumerate(networks):
        torch.testing.assert_close(logits[3 * n : 3 * n + 3], network(codes[3 * n : 3 * n + 3]))


def vq(prior: str, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(
        "vector_quantized", hidden=(64,), latent_settings={"positions": 4, "k": 8, "dim": 2, "prior": prior}
    )


def test_the_rest_of_the_model_starts_as_with_the_independent_prior():
    learned, autoregressive = vq("learned").model, vq("autoregressive").model
    shared = {k: v for k, v in learned.state_dict().items() if k != "latent.prior_logits"}
    mine = {k: v for k, v in autoregressive.state_dict().items() if not k.startswith("latent.code_prior.")}
    assert shared.keys() == mine.keys() and all(torch.equal(shared[k], mine[k]) for k in shared)


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"prior": "pixelcnn"}, "model.latent.prior=pixelcnn"),
        ({"prior": "autoregressive", "prior_hidden": 0}, "model.latent.prior_hidden=0"),
    ],
)
def test_bad_prior_settings_are_refused_in_one_line(settings, named):
    with pytest.raises(ConfigError) as refused:
        VectorQuantizedLatent(8, **settings)
    assert named in str(refused.value).replace("'", "") and "\n" not in str(refused.value)


def test_training_is_unchanged_and_the_autoregressive_prior_fits_the_codes_better(data_dir):
    """The same 200 steps on real digits with each prior: the encoder, codebook and decoder move bit for bit alike
    (the KL's gradient reaches the prior alone), and the autoregressive prior's KL on held-out digits is below the
    independent prior's."""
    train, test = binarized_digits(data_dir)
    kls, states = {}, {}
    for prior in ("learned", "autoregressive"):
        vae = vq(prior)
        train_steps(vae, train)
        with torch.no_grad():
            kls[prior] = vae.model.kl(vae.model.posterior(test)).mean()
        states[prior] = {k: v for k, v in vae.model.state_dict().items() if "prior" not in k}
    assert all(torch.equal(states["learned"][k], states["autoregressive"][k]) for k in states["learned"])
    assert kls["autoregressive"] < kls["learned"] - 0.5, kls
