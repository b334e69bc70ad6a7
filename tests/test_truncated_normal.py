"""The truncated Normal against scipy.stats.truncnorm for any location: inside the interval, at its ends, and
1 to 50 scales beyond either end, where Phi(b) - Phi(a) cancels in floating point; in float32 and float64."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.stats import truncnorm

from vae_zoo.latents.truncated_normal import TruncatedNormal

LOW, HIGH = -2.0, 2.0
SCALES = (0.3, 1.0, 2.0)
BEYOND = (1, 5, 20, 50)  # scales beyond an end of the interval
LOCATIONS = [
    (loc, scale)
    for scale in SCALES
    for loc in (0.0, 1.5, -1.9, *(HIGH + k * scale for k in BEYOND), *(LOW - k * scale for k in BEYOND))
]
#: (log_prob, cdf: absolute; mean: in standard deviations; variance: relative; entropy: absolute)
TOLERANCE = {torch.float32: (1e-4, 5e-5, 1e-4, 1e-5, 1e-5), torch.float64: (1e-9, 1e-9, 1e-8, 1e-7, 1e-7)}


def reference(loc: float, scale: float):
    return truncnorm((LOW - loc) / scale, (HIGH - loc) / scale, loc=loc, scale=scale)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(
    ("loc", "scale"), LOCATIONS, ids=[f"loc={loc:g},scale={scale:g}" for loc, scale in LOCATIONS]
)
def test_density_cdf_and_moments_match_scipy_for_any_location(loc, scale, dtype):
    ref = reference(loc, scale)
    with warnings.catch_warnings():  # scipy's own entropy divides by a mass it cannot represent this far out
        warnings.simplefilter("ignore", RuntimeWarning)
        entropy = ref.expect(lambda x: -ref.logpdf(x))
    q = TruncatedNormal(torch.tensor(loc, dtype=dtype), torch.tensor(scale, dtype=dtype), LOW, HIGH)
    z = ref.ppf([0.01, 0.1, 0.5, 0.9, 0.99])
    at = torch.tensor(z, dtype=dtype)
    log_prob, cdf, mean, variance, entropy_tolerance = TOLERANCE[dtype]
    assert np.abs(q.log_prob(at).double().numpy() - ref.logpdf(at.double().numpy())).max() < log_prob
    assert np.abs(q.cdf(at).double().numpy() - ref.cdf(at.double().numpy())).max() < cdf
    assert abs(q.mean.item() - ref.mean()) < mean * ref.std()
    assert abs(q.variance.item() / ref.var() - 1) < variance
    assert abs(q.entropy().item() - entropy) < entropy_tolerance


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(
    ("loc", "scale"), LOCATIONS, ids=[f"loc={loc:g},scale={scale:g}" for loc, scale in LOCATIONS]
)
def test_samples_have_scipys_mean_and_variance_and_stay_in_the_interval(loc, scale, dtype):
    torch.manual_seed(0)
    ref = reference(loc, scale)
    q = TruncatedNormal(torch.tensor(loc, dtype=dtype), torch.tensor(scale, dtype=dtype), LOW, HIGH)
    draws = q.sample((30_000,))
    assert draws.dtype == dtype and bool(((draws >= LOW) & (draws <= HIGH)).all())
    draws = draws.double()
    assert abs(draws.mean().item() - ref.mean()) < 4 * ref.std() / math.sqrt(len(draws))
    assert abs(draws.var().item() / ref.var() - 1) < 0.03


def test_the_implicit_gradient_through_the_cdf_is_finite_fifty_scales_out():
    loc = torch.tensor([HIGH + 50.0, LOW - 50.0, 0.0], requires_grad=True)
    scale = torch.ones(3, requires_grad=True)
    q = TruncatedNormal(loc, scale, LOW, HIGH)
    z = q.sample()
    q.cdf(z).sum().backward()
    assert torch.isfinite(loc.grad).all() and torch.isfinite(scale.grad).all()
    assert torch.isfinite(q.log_prob(z)).all() and torch.isfinite(q.entropy()).all()
