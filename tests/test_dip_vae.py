"""``objective.dip_weight``: DIP-VAE (Kumar et al. 2018). The batch covariance of the posterior means (DIP-VAE-I)
and of the aggregate posterior (DIP-VAE-II) against numpy's, each packed model's from its own images; the penalty
against its sums with the paper's diagonal weights; training with it moves the covariance towards the identity
where the ELBO alone does not; and it is refused in one line where it cannot work. Each model of a pack has its
own weights: test_packing.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import torch

from tests.conftest import build_model, component, mnist_like, refusal
from vae_zoo.data.files import read_idx
from vae_zoo.errors import ConfigError
from vae_zoo.objectives.disentangled_covariance import (
    code_covariance,
    distance_from_identity,
    gaussian_total_correlation,
)
from vae_zoo.objectives.elbo import ELBO


def _codes(rows: int = 12, units: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    mixing = torch.randn(units, units, generator=generator, dtype=torch.float64)
    mean = torch.randn(rows, units, generator=generator, dtype=torch.float64) @ mixing
    return mean, torch.rand(rows, units, generator=generator, dtype=torch.float64) + 0.1


@pytest.mark.parametrize("aggregate", [False, True])
def test_the_covariance_is_numpys_of_each_models_own_images(aggregate):
    mean, variance = _codes()
    packed = code_covariance(mean, variance, models=3, aggregate=aggregate)
    for n in range(3):
        rows = slice(4 * n, 4 * n + 4)
        expected = np.cov(mean[rows].numpy(), rowvar=False, bias=True)
        if aggregate:
            expected = expected + np.diag(variance[rows].mean(0).numpy())
        np.testing.assert_allclose(packed[n].numpy(), expected, rtol=1e-12)


def test_the_distance_from_the_identity_is_its_two_sums():
    covariance = code_covariance(*_codes(), models=2, aggregate=True)
    distance = distance_from_identity(covariance)
    for n in range(2):
        c = covariance[n]
        off = sum(c[i, j] ** 2 for i in range(3) for j in range(3) if i != j)
        torch.testing.assert_close(distance.off_diagonal[n], off)
        torch.testing.assert_close(distance.diagonal[n], sum((c[i, i] - 1) ** 2 for i in range(3)))
    assert distance_from_identity(torch.eye(3)[None]) == (0, 0)  # one model: scalars


def test_the_gaussian_total_correlation_is_the_marginals_entropy_less_the_joints():
    """Against scipy's Gaussian entropies, for a random covariance of 4 units and a pack of two; 0 for a diagonal one."""
    generator = torch.Generator().manual_seed(3)
    mixing = torch.randn(2, 4, 4, generator=generator, dtype=torch.float64)
    covariance = mixing @ mixing.transpose(1, 2) + 0.1 * torch.eye(4, dtype=torch.float64)
    found = gaussian_total_correlation(covariance)
    for n in range(2):
        c = covariance[n].numpy()
        marginals = sum(scipy.stats.norm(scale=np.sqrt(c[i, i])).entropy() for i in range(4))
        expected = marginals - scipy.stats.multivariate_normal(cov=c).entropy()
        assert found[n].item() == pytest.approx(expected, rel=1e-10)
    assert gaussian_total_correlation(torch.diag(torch.tensor([0.5, 2.0, 3.0]))).item() == pytest.approx(
        0, abs=1e-6
    )


@pytest.mark.parametrize(
    ("covariance", "diagonal_weight"), [("means", 30.0), ("aggregate", 3.0), ("means", 0.5)]
)
def test_the_loss_is_the_elbos_plus_the_weighted_sums(covariance, diagonal_weight):
    """``dip_weight = 3``: the diagonal weighed 30 for the means' covariance and 3 for the aggregate's (the paper's
    defaults, ``dip_diagonal_weight`` unset), or 0.5 given."""
    given = {} if diagonal_weight in (30.0, 3.0) else {"dip_diagonal_weight": diagonal_weight}
    settings = {"dip_weight": 3.0, "dip_covariance": covariance, **given}
    torch.manual_seed(0)
    vae, x = build_model(objective_settings=settings, latent_settings={"dim": 4}), mnist_like(16, seed=0)
    torch.manual_seed(1)
    loss, terms = vae.objective(vae.model, x)
    q = vae.model.posterior(x).base_dist
    expected = code_covariance(q.loc, q.scale.square(), 1, covariance == "aggregate")
    distance = distance_from_identity(expected)
    torch.testing.assert_close(terms["dip_off_diagonal"], distance.off_diagonal)
    torch.testing.assert_close(terms["dip_diagonal"], distance.diagonal)
    dip = 3.0 * distance.off_diagonal + diagonal_weight * distance.diagonal
    torch.testing.assert_close(loss, terms["elbo"] + dip)


def _trained_distance(dip_weight: float, x: torch.Tensor) -> float:
    """The means' covariance's off-diagonal sum on ``x`` after 100 full-batch Adam steps of a 4-unit model."""
    torch.manual_seed(0)
    vae = build_model(objective_settings={"dip_weight": dip_weight}, latent_settings={"dim": 4})
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-2)
    for _ in range(100):
        optimizer.zero_grad()
        vae.objective(vae.model, x)[0].backward()
        optimizer.step()
    with torch.no_grad():
        q = vae.model.posterior(x).base_dist
        return distance_from_identity(code_covariance(q.loc, q.scale.square(), 1, False)).off_diagonal.item()


def test_training_with_it_decorrelates_the_posterior_means(data_dir):
    """128 MNIST training images, binarized once, 100 steps: the means' off-diagonal sum with ``dip_weight = 10`` a
    small fraction of the ELBO's alone (measured 0.004 against 3.6), asserted below a tenth."""
    images = read_idx(Path(data_dir) / "MNIST" / "raw" / "train-images-idx3-ubyte")[:128]
    grey = torch.from_numpy(images.copy()).float().div(255).unsqueeze(1)
    x = torch.bernoulli(grey, generator=torch.Generator().manual_seed(0))
    assert _trained_distance(10.0, x) < 0.1 * _trained_distance(0.0, x)


def test_where_it_cannot_work_it_is_refused_in_one_line():
    with pytest.raises(
        ConfigError, match=r"^objective.dip_covariance='full' is not one of means, aggregate "
    ):
        ELBO(dip_weight=1, dip_covariance="full")
    with pytest.raises(
        ConfigError, match=r"^objective.dip_weight=-1 and objective.dip_diagonal_weight=None must"
    ):
        ELBO(dip_weight=-1)
    dip = {"objective_settings": {"dip_weight": 1.0}}
    assert refusal(latent="gamma", estimator="implicit", **dip) == (
        "objective=elbo (beta=1.0, kl=analytic, dip_weight=1.0, dip_covariance=means) needs a diagonal Normal (a mean "
        "and a variance per latent unit), which latent=gamma's Gamma posteriors lack -- set objective.dip_weight=0"
    )
    assert refusal(flow=component("flow", "planar"), **dip).endswith("-- set objective.dip_weight=0")
    with pytest.raises(ConfigError, match=r"and objective.dip_weight=1.0 trains it otherwise"):
        ELBO(capacity_weight=10, dip_weight=1)
