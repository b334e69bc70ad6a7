"""``objective.mmd_weight`` (InfoVAE, Zhao et al. 2019): the batch's U-statistic of ``MMD^2`` against its closed
form for Gaussians, the loss against its formula, each packed model's from its own rows, and the refusals."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats
from torch.distributions import Independent, Normal

from tests.conftest import build_model, flat_gradient, refusal
from vae_zoo.errors import ConfigError
from vae_zoo.objectives.maximum_mean_discrepancy import gaussian_kernel, mmd_squared
from vae_zoo.priors.mixture import PackedUniformMixtures

DIM, BANDWIDTH = 4, 1.0


def _expected_kernel(mean_gap: float, variances: float) -> float:
    """``E exp(-|a - b|^2 / (2 c))``, ``c = D h^2``, for ``a - b ~ N(gap * 1, variances * I)`` in D dimensions."""
    c = DIM * BANDWIDTH**2
    return (c / (c + variances)) ** (DIM / 2) * math.exp(-DIM * mean_gap**2 / (2 * (c + variances)))


def test_the_batch_estimate_is_unbiased_for_the_closed_form_between_gaussians():
    """q = N(0.5, 0.6^2 I) against p = N(0, I) in 4 dimensions: the mean of 2000 batch estimates (M = 16) is the
    closed form within 4 standard errors; the V-statistic (the kernel's diagonal kept) is biased by about 2/M and
    misses by more than 10."""
    mean, scale, m, batches = 0.5, 0.6, 16, 2000
    expected = (
        _expected_kernel(0.0, 2 * scale**2)
        + _expected_kernel(0.0, 2.0)
        - 2 * _expected_kernel(mean, scale**2 + 1)
    )
    generator = torch.Generator().manual_seed(0)
    z = mean + scale * torch.randn(batches * m, DIM, generator=generator, dtype=torch.float64)
    y = torch.randn(batches * m, DIM, generator=generator, dtype=torch.float64)
    estimates = mmd_squared(z, y, models=batches, bandwidth=BANDWIDTH)
    error = estimates.std() / math.sqrt(batches)
    assert abs(estimates.mean() - expected) < 4 * error
    z, y = z.unflatten(0, (batches, m)), y.unflatten(0, (batches, m))
    kernels = (gaussian_kernel(a, b, BANDWIDTH).mean((-2, -1)) for a, b in ((z, z), (y, y), (z, y)))
    within_q, within_p, between = kernels
    biased = within_q + within_p - 2 * between
    assert abs(biased.mean() - expected) > 10 * error
    assert expected > 0.05


def test_each_packed_model_compares_its_own_rows():
    generator = torch.Generator().manual_seed(1)
    z, y = torch.randn(2, 12, DIM, generator=generator)
    packed = mmd_squared(z, y, models=2, bandwidth=BANDWIDTH)
    alone = [mmd_squared(z[rows], y[rows], 1, BANDWIDTH) for rows in (slice(0, 6), slice(6, 12))]
    torch.testing.assert_close(packed, torch.stack(alone))
    assert not torch.allclose(packed, mmd_squared(z, y, 1, BANDWIDTH).expand(2))


def _batch(n: int = 16) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0)).bernoulli()


@pytest.mark.parametrize(("latent", "estimator"), [("normal", "pathwise"), ("gamma", "implicit")])
def test_the_loss_is_the_beta_weighted_elbo_plus_the_weighted_mmd(latent, estimator):
    """``recon + beta KL + lambda MMD^2(z, y)`` for the training samples z and the prior draws y after them; its
    gradient too; the reported terms are the ELBO's and the MMD's."""
    x, beta, weight = _batch(), 0.0, 50.0
    torch.manual_seed(0)
    vae = build_model(
        latent=latent, estimator=estimator, objective_settings={"beta": beta, "mmd_weight": weight}
    )
    torch.manual_seed(1)
    loss, terms = vae.objective(vae.model, x)
    torch.manual_seed(1)
    q = vae.model.posterior(x)
    z = vae.model.training_sample(q).value
    y = vae.model.prior_distribution().rsample((len(x),))
    recon, kl = vae.model.nll(x, z), vae.model.kl(q)
    mmd = mmd_squared(z, y, 1, 1.0)
    reference = (recon + beta * kl).mean() + weight * mmd
    torch.testing.assert_close(loss, reference)
    torch.testing.assert_close(flat_gradient(vae, loss), flat_gradient(vae, reference))
    torch.testing.assert_close(terms["mmd"], mmd.detach())
    torch.testing.assert_close(terms["elbo"], (recon + kl).mean().detach())


def test_what_cannot_train_it_is_refused_in_one_line():
    assert refusal(estimator="score_function", objective_settings={"mmd_weight": 1.0}) == (
        "estimator=score_function does not pair with objective=elbo (beta=1.0, kl=analytic, mmd_weight=1.0): its "
        "gradient flows through the training sample, which needs a reparameterized sample (explicit or implicit); "
        "choose one of: estimator=implicit, estimator=pathwise"
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"mmd_weight": -1},
            r"objective.mmd_weight=-1 must be >= 0 \(0: off\) and objective.mmd_bandwidth=1.0 > 0",
        ),
        ({"mmd_weight": 1, "mmd_bandwidth": 0}, r"objective.mmd_bandwidth=0 > 0"),
        (
            {"mmd_weight": 1, "gradient": "dreg"},
            (
                r"objective.mmd_weight=1.0 and objective.gradient=dreg do not combine: .* -- set "
                r"objective.gradient=total, or objective.mmd_weight=0"
            ),
        ),
    ],
)
def test_its_settings_are_checked_in_one_line(settings, message):
    with pytest.raises(Exception, match=message):  # a ConfigError, raised through Hydra's instantiate
        build_model(objective_settings=settings)


def test_a_batch_of_one_image_is_refused_in_one_line():
    vae = build_model(objective_settings={"mmd_weight": 1.0})
    with pytest.raises(
        ConfigError, match=r"this batch holds one image per model -- set data.batch_size >= 2"
    ):
        vae.objective(vae.model, _batch(1))


def test_a_packed_mixture_prior_draws_each_models_rows_from_its_own_components_uniformly():
    """Two packed models' mixtures of K = 4 narrow components (model 0's at 0..3, model 1's at 100..103), 3000 rows
    each: every row is one of its own model's components, each chosen with frequency 1/K (chi-square)."""
    models, k, rows = 2, 4, 3000
    loc = torch.tensor([[float(c)] for c in (0, 1, 2, 3, 100, 101, 102, 103)])
    mixtures = PackedUniformMixtures(Independent(Normal(loc, 1e-3), 1), models)
    torch.manual_seed(4)
    draws = mixtures.sample((models * rows,)).squeeze(-1).round().long()
    for n, own in enumerate(draws.unflatten(0, (models, rows))):
        counts = torch.bincount(own - 100 * n, minlength=k)
        assert counts.sum() == rows and len(counts) == k  # every draw one of its own model's components
        assert stats.chisquare(counts.numpy()).pvalue > 1e-3
