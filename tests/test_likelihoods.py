"""The likelihood contract on the Bernoulli: a normalized density of binary images, torch's Bernoulli,
its mean and sampler, the decoder built for its parameter shape, and the data fit check."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.distributions import Bernoulli, Independent

from tests.conftest import build_model
from vae_zoo.errors import ConfigError
from vae_zoo.likelihoods import BernoulliLikelihood

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
    assert model.likelihood.param_shape((1, 28, 28)) == (1, 28, 28)
    assert model.likelihood_params(torch.randn(5, 32)).shape == (5, 1, 28, 28)


def test_bernoulli_on_grey_levels_is_refused_in_one_line_unless_allowed():
    with pytest.raises(ConfigError) as refusal:
        build_model(pixels="8bit")
    assert "\n" not in str(refusal.value) and "model.likelihood.allow_grey_levels=true" in str(refusal.value)
    build_model(pixels="binary")
    BernoulliLikelihood(allow_grey_levels=True).check_data("8bit")
