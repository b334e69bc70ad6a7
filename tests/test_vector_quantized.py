"""VQ-VAE's latents (van den Oord et al. 2017) checked with numbers: the nearest codes against a brute-force search,
the point mass's sample, support and density, the straight-through gradient, the whole training gradient against
the paper's loss written out by hand, the KL to the uniform and to a learned code prior, the prior's sampling
frequencies, the importance-weighted bound of a point mass, the refusal of score-function estimators, and
learning on MNIST."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import kl_divergence

from tests.conftest import (
    binarized_digits,
    build_model,
    component,
    flat_gradient,
    mnist_like,
    refusal,
    train_steps,
)
from vae_zoo.errors import ConfigError, cause_of_type
from vae_zoo.latents.vector_quantized import VectorQuantizedLatent
from vae_zoo.latents.vector_quantized_distribution import CodePrior, VectorQuantized, nearest_codes
from vae_zoo.sampling import interpolate

POSITIONS, K, DIM = 5, 7, 3


def posterior(batch: int = 4, seed: int = 0) -> VectorQuantized:
    generator = torch.Generator().manual_seed(seed)
    encoded = torch.randn(batch, POSITIONS, DIM, generator=generator, requires_grad=True)
    codebook = torch.randn(K, DIM, generator=generator, requires_grad=True)
    return VectorQuantized(encoded, codebook, commitment=0.25)


def test_the_codes_are_the_nearest_codebook_rows_and_the_sample_is_them_exactly():
    q = posterior()
    brute = torch.cdist(q.encoded.detach(), q.codebook.detach().expand(4, K, DIM)).argmin(-1)
    assert torch.equal(q.codes, brute)
    codes_of_each_image = q.codebook.detach()[brute]
    for z in (q.sample(), q.rsample(), q.mean):
        assert torch.equal(z, codes_of_each_image)
    assert q.sample((2,)).shape == (2, 4, POSITIONS, DIM)
    # the support is the codebook's rows: the samples are in it, the encoder's outputs are not
    assert q.support.check(q.rsample()).all() and not q.support.check(q.encoded.detach()).any()
    assert torch.equal(q.log_prob(q.sample((3,))), torch.zeros(3, 4))
    assert torch.equal(q.log_prob(q.encoded.detach()), torch.full((4,), -math.inf))
    assert torch.equal(q.entropy(), torch.zeros(4))


def test_packed_codebooks_give_each_models_images_their_own_codes_and_gradients():
    """Two packed models' codebooks ``(2, K, dim)``, the batch their images in turn: each model's two images get the
    codes, the vectors and (through the codebook term) the codebook gradient of that model alone; its samples are on
    its own codebook, and its prior's densities at them read its own."""
    q = posterior()
    codebooks = torch.randn(2, K, DIM, generator=torch.Generator().manual_seed(3), requires_grad=True)
    packed = VectorQuantized(q.encoded, codebooks)
    (packed_grad,) = torch.autograd.grad(packed.training_loss().sum(), codebooks)
    prior = CodePrior(torch.randn(4, POSITIONS, K), codebooks.detach())
    z = packed.sample((3,))
    assert packed.support.check(z).all() and torch.isfinite(prior.log_prob(z)).all()
    for model in range(2):
        images = slice(2 * model, 2 * model + 2)
        alone = VectorQuantized(q.encoded[images], codebooks[model])
        assert torch.equal(packed.codes[images], alone.codes)
        assert torch.equal(packed.quantized[images], alone.quantized)
        (alone_grad,) = torch.autograd.grad(alone.training_loss().sum(), codebooks)
        torch.testing.assert_close(packed_grad[model], alone_grad[model])
        own_prior = CodePrior(prior.logits[images], codebooks[model].detach())
        torch.testing.assert_close(prior.log_prob(z)[:, images], own_prior.log_prob(z[:, images]))


def test_an_interpolation_between_two_code_matrices_steps_from_code_to_code():
    """What ``sample.py`` decodes between two images: each step of the straight line moved to its nearest codes."""
    latent = VectorQuantizedLatent(8, positions=POSITIONS, k=K, dim=DIM)
    with torch.no_grad():
        latent.codebook.normal_()
        q = latent.posterior(torch.randn(2, 8))
    path = latent.onto_support(interpolate(latent, latent.prior(), None, q.mean[:1], q.mean[1:], 9))
    assert q.support.check(path).all()
    assert torch.equal(path[0], q.mean[:1]) and torch.equal(path[-1], q.mean[1:])


def test_the_straight_through_gradient_passes_to_the_encoder_as_at_the_code():
    """``d f(z)/d z_e`` is ``f'`` at the code, and no gradient of ``f`` reaches the codebook through the sample."""
    q = posterior()
    weights = torch.randn(POSITIONS, DIM)
    f = lambda z: (z.sin() * weights).sum()
    encoded_grad, codebook_grad = torch.autograd.grad(
        f(q.rsample()), (q.encoded, q.codebook), allow_unused=True
    )
    at_the_code = q.quantized.detach().requires_grad_()
    (expected,) = torch.autograd.grad(f(at_the_code), at_the_code)
    assert torch.equal(encoded_grad, expected)
    assert codebook_grad is None


def test_the_codebook_and_commitment_terms_have_the_papers_value_and_gradients():
    """``||stop(z_e) - e||^2`` moves the codebook alone, towards the encoder: ``2 (e - z_e)``; ``beta ||z_e -
    stop(e)||^2`` the encoder alone: ``2 beta (z_e - e)``."""
    q = posterior()
    loss = q.training_loss().sum()
    difference = (q.encoded - q.quantized).detach()
    torch.testing.assert_close(loss, 1.25 * difference.square().sum())
    torch.testing.assert_close(q.quantization_error(), difference.square().sum((-2, -1)))
    encoded_grad, codebook_grad = torch.autograd.grad(loss, (q.encoded, q.codebook))
    torch.testing.assert_close(encoded_grad, 2 * 0.25 * difference)
    one_hot = torch.nn.functional.one_hot(q.codes, K).float()
    torch.testing.assert_close(codebook_grad, torch.einsum("bnk,bnd->kd", one_hot, -2 * difference))


def test_the_kl_to_the_uniform_prior_is_positions_log_k_and_to_a_learned_one_minus_the_codes_log_probs():
    q = posterior()
    uniform = CodePrior(torch.zeros(POSITIONS, K), q.codebook)
    torch.testing.assert_close(kl_divergence(q, uniform), torch.full((4,), POSITIONS * math.log(K)))
    logits = torch.randn(POSITIONS, K, requires_grad=True)
    learned = CodePrior(logits, q.codebook)
    log_p = logits.log_softmax(-1)
    expected = -torch.stack([log_p[torch.arange(POSITIONS), q.codes[b]].sum() for b in range(4)])
    kl = kl_divergence(q, learned)
    torch.testing.assert_close(kl, expected)
    # the closed form is the one-sample estimate log q(z) - log p(z) at the point, which the prior's density finds
    torch.testing.assert_close(q.log_prob(q.sample()) - learned.log_prob(q.sample()), kl)
    assert torch.equal(learned.log_prob(q.encoded.detach()), torch.full((4,), -math.inf))
    # the KL trains the prior's logits towards the codes' frequencies, and gives the encoder nothing
    assert torch.autograd.grad(kl.sum(), q.encoded, allow_unused=True)[0] is None
    assert torch.autograd.grad(kl.sum(), logits)[0].abs().sum() > 0


def test_the_prior_draws_each_code_with_its_probability():
    logits = torch.tensor([[2.0, 0.0, -1.0, 0.5, -3.0, 1.0, 0.0]])
    codebook = torch.randn(K, DIM, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    z = CodePrior(logits, codebook).sample((40_000,))
    assert CodePrior(logits, codebook).support.check(z).all()
    frequencies = torch.bincount(nearest_codes(z, codebook).flatten(), minlength=K) / 40_000
    probabilities = logits.softmax(-1)[0]
    standard_error = (probabilities * (1 - probabilities) / 40_000).sqrt()
    assert ((frequencies - probabilities).abs() < 4 * standard_error + 1e-4).all()


def test_the_training_gradient_is_the_papers_loss_written_out_by_hand():
    """``-log p(x | z_e + stop(e_k - z_e)) + ||stop(z_e) - e_k||^2 + beta ||z_e - stop(e_k)||^2``, averaged over the
    batch, with the nearest code found by ``cdist``: the ELBO objective's gradient in every parameter, and its
    loss the negative ELBO, ``-log p(x|e_k) + positions log k``."""
    torch.manual_seed(0)
    vae = build_model("vector_quantized", latent_settings={"positions": 4, "k": 8, "dim": 2})
    model, x = vae.model, mnist_like(16, seed=0)
    with torch.no_grad():  # codes spread across the codebook, as training makes them
        model.latent.codebook.normal_()
    loss, terms = vae.objective(model, x)
    encoded = model.latent.head(model.features(x)).unflatten(-1, (4, 2))
    codebook = model.latent.codebook
    code = codebook[torch.cdist(encoded.detach(), codebook.detach().expand(16, 8, 2)).argmin(-1)]
    straight_through = encoded + (code - encoded).detach()
    by_hand = model.nll(x, straight_through) + (encoded.detach() - code).square().sum((-2, -1))
    by_hand = (by_hand + 0.25 * (encoded - code.detach()).square().sum((-2, -1))).mean()
    torch.testing.assert_close(
        flat_gradient(model, loss), flat_gradient(model, by_hand), rtol=1e-4, atol=1e-6
    )
    recon = model.nll(x, code).mean()
    torch.testing.assert_close(loss, recon + 4 * math.log(8))
    torch.testing.assert_close(terms["kl"], torch.tensor(4 * math.log(8)))
    torch.testing.assert_close(terms["vq_loss"], 1.25 * (encoded - code).square().sum((-2, -1)).mean())


@pytest.mark.parametrize("objective", ["iwae", "elbo"])
def test_a_point_mass_importance_weighted_bound_is_its_elbo(objective):
    model = build_model("vector_quantized", objective=objective).model.eval()
    x = mnist_like(8, seed=1)
    with torch.no_grad():
        torch.testing.assert_close(model.importance_weighted_nll(x, 100), model(x))


@pytest.mark.parametrize("estimator", ["score_function", "nvil", "reinforce_loo"])
def test_a_score_function_estimator_is_refused_for_a_point_mass(estimator):
    message = refusal(latent="vector_quantized", estimator=estimator)
    assert "not a point mass" in message and "estimator=pathwise" in message and "\n" not in message


def test_a_flow_and_a_continuous_prior_are_refused_for_the_codes():
    assert "a density on all of R^D" in refusal(latent="vector_quantized", flow=component("flow", "planar"))
    assert "a continuous density" in refusal(latent="vector_quantized", prior=component("prior", "vamp"))


@pytest.mark.parametrize(
    "bad",
    [
        {"k": 1},
        {"positions": 0},
        {"commitment": -1.0},
        {"prior": "mog"},
        {"codebook_update": "kmeans"},
        {"decay": 1.0},
        {"epsilon": 0.0},
    ],
)
def test_bad_settings_are_refused_in_one_line(bad):
    with pytest.raises(ConfigError) as refused:
        VectorQuantizedLatent(8, **bad)
    setting, value = next(iter(bad.items()))
    assert f"model.latent.{setting}={value!r}".replace("'", "") in str(refused.value).replace("'", "")
    assert "\n" not in str(refused.value)


def test_on_a_grid_each_position_is_coded_by_one_shared_map_and_decoded_channel_by_channel():
    """``grid: true``: the encoder's map ``(C, h, w)`` is taken to ``dim`` coordinates at each position by one 1x1
    convolution, the positions row by row; the decoder reads the codes as a ``(dim, h, w)`` map."""
    channels, height, width = 6, 3, 4
    latent = VectorQuantizedLatent(
        channels * height * width, positions=height * width, k=K, dim=DIM, grid=True
    )
    maps = torch.randn(2, 5, channels, height, width)  # sample dims, then the batch
    encoded = latent.posterior(maps.flatten(-3)).encoded
    weight = latent.head.weight[:, :, None, None]
    expected = torch.nn.functional.conv2d(maps.flatten(0, 1), weight, latent.head.bias)
    assert encoded.shape == (2, 5, height * width, DIM)
    torch.testing.assert_close(encoded, expected.flatten(2).transpose(1, 2).unflatten(0, (2, 5)))
    z = torch.randn(2, 5, height * width, DIM)
    decoded = latent.decoder_input(z).unflatten(-1, (DIM, height, width))
    assert torch.equal(decoded[..., :, 1, 2], z[..., 1 * width + 2, :])
    with pytest.raises(
        ConfigError, match=r"^model\.latent\.grid=true: the encoder's 50 features are not a grid of"
    ):
        VectorQuantizedLatent(50, positions=12, grid=True)


def test_the_model_hands_the_encoders_grid_to_the_latent():
    """Built as a model, the latent knows the conv encoder's 7 x 7 grid: 16 positions, though they divide its
    64 x 49 = 3136 features, are refused naming the grid's 49 (the one line the commands print)."""
    with pytest.raises(Exception) as refused:  # Hydra's instantiate wraps it
        build_model(
            "vector_quantized",
            latent_settings={"grid": True, "positions": 16},
            encoder={"_target_": "vae_zoo.nets.conv.ConvEncoder", "grid": True},
            decoder={"_target_": "vae_zoo.nets.conv.ConvDecoder", "grid": True},
        )
    said = str(cause_of_type(refused.value, ConfigError))
    assert said == (
        "model.latent.grid=true: model.latent.positions=16 is not the encoder's 7 x 7 grid -- set "
        "model.latent.positions=49"
    )


@pytest.mark.parametrize("codebook_update", ["loss", "ema"])
def test_it_learns_mnist_with_most_of_its_codebook(codebook_update, data_dir):
    """200 steps of the preset on real digits, its codebook trained by its loss term or moved by moving averages:
    the bound improves by tens of nats, and the images use most codes."""
    train, test = binarized_digits(data_dir)
    torch.manual_seed(0)
    vae = build_model("vector_quantized", hidden=(256,), latent_settings={"codebook_update": codebook_update})
    with torch.no_grad():
        before = vae.model(test).mean()
    train_steps(vae, train)
    with torch.no_grad():
        after = vae.model(test).mean()
        used = vae.model.posterior(test).codes.unique().numel()
    assert after < before - 50, (before, after)
    assert used > 0.75 * vae.model.latent.k, used


def test_the_papers_code_grid_learns_mnist(data_dir):
    """``experiment=vq_grid_mnist``'s networks, smaller: convolutions to a 7 x 7 grid of codes and back. 200 steps
    improve the bound by tens of nats. (Unlike the MLP's 16 positions, the grid's 49 use few codes this early:
    most positions are background.)"""
    train, test = binarized_digits(data_dir)
    torch.manual_seed(0)
    vae = build_model(
        "vector_quantized",
        latent_settings={"grid": True, "positions": 49, "codebook_update": "ema"},
        encoder={"_target_": "vae_zoo.nets.conv.ConvEncoder", "channels": [16, 32], "grid": True},
        decoder={"_target_": "vae_zoo.nets.conv.ConvDecoder", "channels": [32, 16], "grid": True},
    )
    with torch.no_grad():
        before = vae.model(test).mean()
    train_steps(vae, train)
    with torch.no_grad():
        after = vae.model(test).mean()
    assert after < before - 50, (before, after)
