"""The likelihood contract: each likelihood normalizes over its data space, matches its formula or torch,
samples what it computes, stays finite in bf16; the decoder is built for its parameter shape; data fit."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch.distributions import Bernoulli, ContinuousBernoulli, Independent, Normal

from tests.conftest import FAST, build_model
from tests.test_training import SHORT
from vae_zoo.cli import train, user_error
from vae_zoo.errors import ConfigError
from vae_zoo.likelihoods import BernoulliLikelihood
from vae_zoo.likelihoods.continuous_bernoulli import ContinuousBernoulliLikelihood
from vae_zoo.likelihoods.discretized_logistic import DiscretizedLogisticLikelihood
from vae_zoo.likelihoods.gaussian import GaussianLikelihood

SHAPE = (1, 2, 2)  # 16 binary images: small enough to sum the density over all of them


def test_bernoulli_density_sums_to_one_over_every_binary_image_and_matches_torch():
    torch.manual_seed(0)
    likelihood = BernoulliLikelihood()
    params = torch.randn(3, *SHAPE) * 3  # three images' logits
    images = torch.tensor(list(itertools.product((0.0, 1.0), repeat=4))).reshape(16, 1, *SHAPE)
    nll = likelihood.nll(
        params.expand(16, *params.shape), images
    )  # (16, 3): every image, every parameter set
    torch.testing.assert_close(torch.exp(-nll).sum(0), torch.ones(3))
    reference = -Independent(Bernoulli(logits=params), 3).log_prob(images)
    torch.testing.assert_close(nll, reference)


def test_bernoulli_mean_and_sample_frequencies():
    torch.manual_seed(1)
    likelihood = BernoulliLikelihood()
    params = torch.randn(1, 4, 4)
    mean = likelihood.mean(params)
    torch.testing.assert_close(mean, torch.sigmoid(params))
    draws = torch.stack([likelihood.sample(params) for _ in range(20_000)])
    stderr = (mean * (1 - mean) / len(draws)).sqrt()
    assert torch.all((draws.mean(0) - mean).abs() < 4 * stderr + 1e-6)


def test_the_decoder_is_built_for_the_likelihoods_parameter_shape():
    model = build_model()
    assert model.model.likelihood.param_shape((1, 28, 28)) == (1, 28, 28)
    assert model.model.likelihood_params(torch.randn(5, 32)).shape == (5, 1, 28, 28)


def test_bernoulli_on_grey_levels_is_refused_in_one_line_unless_allowed():
    with pytest.raises(ConfigError) as refusal:
        build_model(pixels="8bit")
    assert "\n" not in str(refusal.value) and "model.likelihood.allow_grey_levels=true" in str(refusal.value)
    build_model(pixels="binary")
    BernoulliLikelihood(allow_grey_levels=True).check_data("8bit")


# -- the grey-level likelihoods ------------------------------------------------------------------------

LEVELS = torch.arange(256, dtype=torch.float64) / 255  # every 8-bit value of one pixel, as served


def test_discretized_logistic_mixture_sums_to_one_over_all_256_levels_even_at_extremes():
    torch.manual_seed(2)
    likelihood = DiscretizedLogisticLikelihood(components=3)
    assert likelihood.param_shape((1, 1, 1)) == (9, 1, 1)
    cases = [torch.randn(9, 1, 1, dtype=torch.float64)]
    # near-degenerate scales (the floor e^-7) at an edge, the middle and between two levels; huge scales
    for loc, log_scale in ((-1.0, -7.0), (0.0, -7.0), (1 / 255, -7.0), (0.3, 5.0), (3.0, 0.0)):
        cases.append(
            torch.tensor([0, 0, 0, loc, loc, loc, log_scale, log_scale, log_scale], dtype=torch.float64)
        )
    for params in cases:
        params = params.reshape(9, 1, 1)
        nll = likelihood.nll(params.expand(256, 9, 1, 1), LEVELS.reshape(256, 1, 1, 1))
        torch.testing.assert_close(
            torch.exp(-nll).sum(), torch.tensor(1.0, dtype=torch.float64), rtol=0, atol=2e-5
        )


def test_discretized_logistic_samples_follow_its_probabilities():
    torch.manual_seed(3)
    likelihood = DiscretizedLogisticLikelihood(components=2)
    params = torch.tensor([0.5, -0.5, -0.4, 0.3, -2.5, -3.0]).reshape(6, 1, 1)
    probs = torch.exp(-likelihood.nll(params.expand(256, 6, 1, 1), LEVELS.float().reshape(256, 1, 1, 1)))
    draws = torch.stack([likelihood.sample(params) for _ in range(40_000)]).flatten()
    counts = torch.bincount(torch.round(draws * 255).long(), minlength=256).double()
    expected = probs.double() * len(draws)
    kept = expected > 5  # Pearson's chi-square on the bins with enough mass, the rest pooled
    observed = torch.cat([counts[kept], counts[~kept].sum(0, keepdim=True)])
    wanted = torch.cat([expected[kept], expected[~kept].sum(0, keepdim=True)])
    statistic = ((observed - wanted) ** 2 / wanted).sum()
    p_value = torch.special.gammaincc(
        torch.tensor((len(observed) - 1) / 2.0, dtype=torch.float64), statistic / 2
    )
    assert p_value > 1e-3, p_value
    mean = likelihood.mean(params)
    assert abs(draws.mean() - mean.item()) < 0.01  # mixture mean of the continuous logistics, ~1/255 off


def test_continuous_densities_integrate_to_one_and_match_their_formulas():
    torch.manual_seed(4)
    grid = torch.linspace(0, 1, 200_001, dtype=torch.float64)
    likelihood = ContinuousBernoulliLikelihood()
    for logit in (-60.0, -30.0, -3.0, -1e-4, 0.0, 5e-3, 2.0, 30.0, 60.0):  # the Taylor branch near 0 included
        for dtype in (torch.float64, torch.float32):
            params = torch.full((200_001, 1, 1, 1), logit, dtype=dtype)
            nll = likelihood.nll(params, grid.to(dtype).reshape(-1, 1, 1, 1)).double()
            tolerance = 1e-6 if dtype == torch.float64 else 1e-5
            assert abs(torch.trapezoid(torch.exp(-nll), grid).item() - 1) < tolerance, (logit, dtype)
        params = torch.full((200_001, 1, 1, 1), logit, dtype=torch.float64)
        nll = likelihood.nll(params, grid.reshape(-1, 1, 1, 1))
        mean = torch.trapezoid(grid * torch.exp(-nll), grid)
        assert abs(mean - likelihood.mean(params[:1]).item()) < 1e-6, logit
        if 1e-3 < abs(logit) <= 10:  # torch's ContinuousBernoulli, where it is accurate
            reference = -ContinuousBernoulli(logits=params.flatten()).log_prob(grid)
            torch.testing.assert_close(nll, reference, rtol=1e-9, atol=1e-9)
    wide = torch.linspace(-3, 4, 200_001, dtype=torch.float64).reshape(-1, 1, 1, 1)
    for likelihood, params in (
        (
            GaussianLikelihood(scale="fixed", sigma=0.2),
            torch.tensor(0.4, dtype=torch.float64).reshape(1, 1, 1),
        ),
        (GaussianLikelihood(scale="pixel"), torch.tensor([0.4, -2.0], dtype=torch.float64).reshape(2, 1, 1)),
    ):
        nll = likelihood.nll(params.expand(len(wide), *params.shape), wide)
        assert abs(torch.trapezoid(torch.exp(-nll), wide.flatten()).item() - 1) < 1e-6
        loc, sigma = (
            0.4,
            0.2
            if likelihood.scale == "fixed"
            else torch.nn.functional.softplus(torch.tensor(-2.0, dtype=torch.float64)).item() + 1e-3,
        )
        reference = -Normal(torch.tensor(loc, dtype=torch.float64), sigma).log_prob(wide.flatten())
        torch.testing.assert_close(nll, reference, rtol=1e-9, atol=1e-9)


def test_a_density_on_dequantized_levels_bounds_the_discrete_likelihood_by_nll_plus_d_ln_256():
    """The bits/dim convention: E_u[-log p((k + u) / 256)] + ln 256 >= -log P(k), P(k) = the density's
    mass on the bin [k/256, (k+1)/256), for a continuous Bernoulli pixel (Jensen's inequality)."""
    likelihood = ContinuousBernoulliLikelihood()
    params = torch.tensor(1.3, dtype=torch.float64).reshape(1, 1, 1)
    u = (torch.arange(2000, dtype=torch.float64) + 0.5) / 2000  # midpoint rule over each bin
    total_mass = 0.0
    for k in (0, 17, 128, 255):
        x = ((k + u) / 256).reshape(-1, 1, 1, 1)
        nll = likelihood.nll(params.expand(len(u), 1, 1, 1), x)
        mass = torch.exp(-nll).mean() / 256
        total_mass += mass.item()
        assert nll.mean() + math.log(256) >= -torch.log(mass) - 1e-12
    assert 0 < total_mass < 1


@pytest.mark.parametrize(
    "likelihood",
    [
        ContinuousBernoulliLikelihood(),
        GaussianLikelihood(),
        GaussianLikelihood(scale="fixed", sigma=1e-3),
        DiscretizedLogisticLikelihood(),
    ],
    ids=["continuous_bernoulli", "gaussian_pixel", "gaussian_fixed", "discretized_logistic"],
)
def test_grey_level_likelihoods_are_finite_in_bf16_for_extreme_parameters(likelihood):
    shape = likelihood.param_shape((2, 4, 4))
    extremes = torch.tensor([-60.0, -20.0, -1e-3, 0.0, 1e-3, 20.0, 60.0])
    params = (
        extremes.repeat(math.ceil(math.prod(shape) / 7))[: math.prod(shape)].reshape(shape).requires_grad_()
    )
    x = torch.tensor([0.0, 1.0, 0.5, 1 / 255]).repeat(8)[:32].reshape(2, 4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        nll = likelihood.nll(params.bfloat16(), x)
    assert torch.isfinite(nll).all()
    nll.sum().backward()
    assert torch.isfinite(params.grad).all()


@pytest.mark.parametrize(
    ("likelihood", "data"),
    [
        ("discretized_logistic", ("data.binarize=none",)),
        ("gaussian", ("data.binarize=none", "data.dequantize=true")),
        ("continuous_bernoulli", ("data.binarize=none", "data.dequantize=true")),
    ],
)
def test_grey_level_likelihoods_train_and_report_bits_per_dim(likelihood, data, make_cfg):
    """A short real run per likelihood on its pixels: finite bounds, and test/bpd the IW bound in bits per
    dimension (with ln 256 per dimension added for a density of dequantized levels)."""
    metrics = train(make_cfg(f"likelihood={likelihood}", *data, *SHORT, *FAST, "callbacks=none", "logger=[]"))
    dims, dequantized = 784, "data.dequantize=true" in data
    expected = (metrics["test/nll_iw"] + dequantized * dims * math.log(256)) / (dims * math.log(2))
    assert math.isfinite(metrics["test/bpd"]) and math.isclose(metrics["test/bpd"], expected, rel_tol=1e-5)
    assert metrics["test/bpd"] > 0
    assert "val/elbo_bpd" in metrics


def test_a_grey_level_likelihood_on_binary_pixels_is_refused_in_one_line(make_cfg):
    with pytest.raises(Exception) as refusal:
        train(make_cfg("likelihood=gaussian", *SHORT, *FAST))
    message = str(user_error(refusal.value))
    assert "\n" not in message and "data.binarize=none data.dequantize=true" in message
