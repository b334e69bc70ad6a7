"""The mutual information and the aggregate posterior's KL (Hoffman & Johnson 2016): every family's pairwise
densities against each image's own ``log_prob``, the estimate's mean against quadrature, its limits (0 for
identical posteriors, ``log N`` for separate ones), each packed model alone, two processes' images gathered,
chunking, the Python API's refusal for a flow, and a trained run."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from torch.distributions import Gamma, Independent, LogNormal, Normal

from tests.conftest import TINY, component, mnist_like, model_of
from vae_zoo import mutual_information
from vae_zoo.cli import train
from vae_zoo.config_groups import options
from vae_zoo.errors import ConfigError
from vae_zoo.latents.vector_quantized_distribution import VectorQuantized
from vae_zoo.mutual_information import AggregatePosterior, linear_form, pairwise_log_probs, surgery_metrics
from vae_zoo.packing.pack import pack


def estimate(q, z, kl=None, models=1, gather=None):
    """``(I^, marginal KL)`` per model of the posteriors ``q`` with samples ``z`` (KL 0 where not given)."""
    aggregate = AggregatePosterior()
    aggregate.add(q, z, torch.zeros(len(z)) if kl is None else kl, models)
    return aggregate.estimates() if gather is None else aggregate.estimates(gather)


@pytest.mark.parametrize("latent", sorted(options("latent")))
def test_every_familys_pairwise_densities_are_each_images_own_log_prob(latent):
    """``log q(z_i | x_j)`` for every pair, for each family (the linear forms of the Normal, the Bernoulli and the
    categorical among them), against
    ``log_prob`` of sample ``i`` repeated for every image, one pair per batch entry."""
    torch.manual_seed(0)
    model = model_of(latent)
    q = model.posterior(mnist_like(12, seed=1))
    z = q.sample()
    pairs = pairwise_log_probs(q, z.unsqueeze(0), models=1)[0]
    expected = torch.stack([q.log_prob(z[i].expand_as(z)) for i in range(12)]).double()
    torch.testing.assert_close(pairs, expected, rtol=1e-5, atol=1e-4)
    assert (linear_form(q) is not None) == (
        latent not in ("power_spherical", "truncated_normal", "two_layer", "vector_quantized")
    )


def test_a_packed_posterior_pairs_each_models_samples_with_its_own_images():
    """Two packed models: model m's block is its samples against its own posteriors, by the linear form and by
    ``log_prob`` broadcast (the same Normal as an event of ``(D, 1)``); neither reads the other's."""
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(model_of("normal"))
    packed = pack(models)
    x = mnist_like(10, seed=2)
    q = packed.posterior(torch.cat([x, x]))
    z = q.sample()
    columns = Independent(Normal(q.base_dist.loc.unsqueeze(-1), q.base_dist.scale.unsqueeze(-1)), 2)
    for posterior, samples in ((q, z), (columns, z.unsqueeze(-1))):
        pairs = pairwise_log_probs(posterior, samples.unflatten(0, (2, 10)), 2)
        for m in range(2):
            own = range(10 * m, 10 * m + 10)
            expected = torch.stack([q.log_prob(z[i].expand_as(z))[own] for i in own])
            torch.testing.assert_close(pairs[m], expected.double(), rtol=1e-5, atol=1e-4)
    assert linear_form(q) is not None and linear_form(columns) is None


def one_dimensional(locs, scales, copies: int):
    """Posteriors ``N(loc_j, scale_j^2)`` in one dimension, each image's repeated ``copies`` times (the aggregate
    stays the mixture of the distinct ones; the estimate averages ``copies`` samples of each)."""
    loc = torch.tensor(locs, dtype=torch.float64).repeat_interleave(copies).unsqueeze(-1)
    scale = torch.tensor(scales, dtype=torch.float64).repeat_interleave(copies).unsqueeze(-1)
    return Independent(Normal(loc, scale), 1)


def mixture_information(densities) -> float:
    """``(1/N) sum_i KL(q_i || q)`` with ``q`` their mixture, by quadrature (one-dimensional densities)."""

    def kl(i: int) -> float:
        def integrand(t: float) -> float:
            own = densities[i](t)
            mixture = np.mean([density(t) for density in densities])
            return own * (math.log(own) - math.log(mixture)) if own > 0 else 0.0

        return integrate.quad(integrand, -np.inf, np.inf, limit=200)[0]

    return float(np.mean([kl(i) for i in range(len(densities))]))


def test_the_estimates_mean_is_the_mixtures_information_by_quadrature():
    """Normal and Gamma posteriors (linear forms) and log-normal ones (``log_prob`` broadcast): the estimate is the
    mean of ``log q_i(z_i) - log q(z_i)`` (scipy's densities), whose mean is within 4 standard errors of
    quadrature's."""
    torch.manual_seed(0)
    locs, scales, copies = [-1.0, 0.0, 0.5, 2.0], [0.5, 1.0, 0.3, 0.8], 1500
    shapes, rates = [0.5, 2.0, 5.0, 1.0], [1.0, 3.0, 1.0, 0.2]
    one = one_dimensional(locs, scales, copies)
    cases = [
        (one, [stats.norm(m, s).pdf for m, s in zip(locs, scales)]),
        (
            Independent(
                Gamma(
                    torch.tensor(shapes).repeat_interleave(copies).unsqueeze(-1),
                    torch.tensor(rates).repeat_interleave(copies).unsqueeze(-1),
                ),
                1,
            ),
            [stats.gamma(a, scale=1 / b).pdf for a, b in zip(shapes, rates)],
        ),
        (
            Independent(LogNormal(one.base_dist.loc, one.base_dist.scale), 1),
            [stats.lognorm(s, scale=math.exp(m)).pdf for m, s in zip(locs, scales)],
        ),
    ]
    assert [linear_form(q) is not None for q, _ in cases] == [True, True, False]
    for q, densities in cases:
        z = q.sample()
        (information,), _ = estimate(q, z)
        points = z.double().squeeze(-1).numpy()
        own = np.log([densities[i // copies](t) for i, t in enumerate(points)])
        mixture = np.log(np.mean([density(points) for density in densities], axis=0))
        terms = own - mixture
        assert information == pytest.approx(terms.mean(), rel=1e-5)
        exact = mixture_information(densities)
        assert abs(terms.mean() - exact) < 4 * terms.std() / math.sqrt(len(terms)), (terms.mean(), exact)
        assert 0 < exact < math.log(4)


def test_point_masses_pairs_are_their_log_probs_and_the_information_counts_the_shared_codes():
    """VQ-VAE's point masses, 40 images of which several share their codes: the pairs found by comparing points
    equal ``log_prob`` at every pair (0 or ``-inf``), in a pack of two each model's own, and ``I^`` is
    ``mean_i -log(n_i / N)`` with ``n_i`` the images sharing image ``i``'s codes."""
    generator = torch.Generator().manual_seed(0)
    codebook = torch.randn(3, 2, generator=generator)
    codes = torch.randint(0, 3, (40, 2), generator=generator)  # 9 code matrices for 40 images
    q = VectorQuantized(codebook[codes] + 0.01 * torch.randn(40, 2, 2, generator=generator), codebook)
    z = q.sample()
    for models in (1, 2):
        pairs = pairwise_log_probs(q, z.unflatten(0, (models, -1)), models)
        rows = 40 // models
        for m in range(models):
            own = slice(m * rows, (m + 1) * rows)
            expected = torch.stack([q.log_prob(point.expand(40, 2, 2))[own] for point in z[own]]).double()
            assert torch.equal(pairs[m], expected)
    shared = (q.codes[:, None] == q.codes[None]).all(-1).sum(1).double()
    (information,), _ = estimate(q, z)
    assert information == pytest.approx((-(shared / 40).log()).mean().item(), abs=1e-12)
    assert 0 < information < math.log(40)


def test_identical_posteriors_carry_no_information_and_separate_ones_log_n():
    """The same posterior for every image: ``I^ = 0`` and the marginal KL the mean KL. Posteriors far apart for
    ``N`` images: ``I^ = log N``, whatever the KL."""
    torch.manual_seed(0)
    same = Independent(Normal(torch.full((50, 3), 0.7), torch.full((50, 3), 0.4)), 1)
    kl = torch.rand(50)
    (information,), (marginal,) = estimate(same, same.sample(), kl)
    assert abs(information) < 1e-12 and marginal == pytest.approx(kl.double().mean().item(), abs=1e-12)
    apart = Independent(Normal(torch.arange(50.0).unsqueeze(-1) * 10, torch.full((50, 1), 1e-2)), 1)
    (information,), _ = estimate(apart, apart.sample())
    assert information == pytest.approx(math.log(50), abs=1e-9)


def test_each_packed_model_estimates_from_its_own_images_alone():
    """Two models' posteriors in one batch, one nearly collapsed: each one's numbers are those of it alone."""
    torch.manual_seed(0)
    loc = torch.cat([torch.randn(40, 4) * 3, torch.randn(40, 4) * 0.01])
    q = Independent(Normal(loc, torch.full((80, 4), 0.5)), 1)
    z, kl = q.sample(), torch.rand(80)
    both = estimate(q, z, kl, models=2)
    for m in range(2):
        rows = slice(40 * m, 40 * m + 40)
        alone = estimate(Independent(Normal(loc[rows], torch.full((40, 4), 0.5)), 1), z[rows], kl[rows])
        assert both[0][m] == pytest.approx(alone[0][0], abs=1e-12)
        assert both[1][m] == pytest.approx(alone[1][0], abs=1e-12)
    assert both[0][0] > 2 and both[0][1] < 0.1


def test_two_processes_gather_each_others_images():
    """Two threads standing for two processes, each with half the images, exchange their tensors as
    ``all_gather`` does: both get the estimate of all the images in one process."""
    torch.manual_seed(0)
    q = Independent(Normal(torch.randn(60, 2), torch.rand(60, 2) + 0.2), 1)
    z, kl = q.sample(), torch.rand(60)
    expected = estimate(q, z, kl)
    halves = [slice(0, 30), slice(30, 60)]
    barrier, shelf, results = threading.Barrier(2), [None, None], [None, None]

    def process(rank: int) -> None:
        def gather(tensor):
            shelf[rank] = tensor
            barrier.wait()
            stacked = torch.stack(list(shelf))
            barrier.wait()
            return stacked

        rows = halves[rank]
        mine = Independent(Normal(q.base_dist.loc[rows], q.base_dist.scale[rows]), 1)
        results[rank] = estimate(mine, z[rows], kl[rows], gather=gather)

    threads = [threading.Thread(target=process, args=(rank,)) for rank in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for got in results:
        assert got[0] == pytest.approx(expected[0], abs=1e-12) and got[1] == pytest.approx(
            expected[1], abs=1e-12
        )


@pytest.mark.parametrize("latent", ["categorical", "vector_quantized"])
def test_the_chunks_do_not_change_the_estimate(monkeypatch, latent):
    """The pairs by linear forms, and by comparing points (whose chunks hold a number per pair, not an event)."""
    torch.manual_seed(0)
    model = model_of(latent)
    aggregate = AggregatePosterior()
    for seed in (3, 4):  # two batches of posteriors
        q = model.posterior(mnist_like(15, seed=seed))
        aggregate.add(q, q.sample(), torch.zeros(15), 1)
    (whole,), _ = aggregate.estimates()
    monkeypatch.setattr(mutual_information, "PAIR_ELEMENTS", 7)  # one sample at a time
    (chunked,), _ = aggregate.estimates()
    assert chunked == pytest.approx(whole, abs=1e-12) and whole > 0


def test_a_prior_of_the_label_reports_the_information_alone():
    torch.manual_seed(0)
    q = Independent(Normal(torch.randn(20, 2), torch.ones(20, 2)), 1)
    aggregate = AggregatePosterior()
    aggregate.add(q, q.sample(), torch.ones(20), 1)
    assert set(surgery_metrics(aggregate, prior_of_label=False)[0]) == {
        "test/mutual_info",
        "test/marginal_kl",
    }
    assert set(surgery_metrics(aggregate, prior_of_label=True)[0]) == {"test/mutual_info"}
    assert surgery_metrics(AggregatePosterior(), prior_of_label=False) == []


def test_the_python_api_estimates_and_refuses_a_flow_in_one_line():
    torch.manual_seed(0)
    x = mnist_like(30, seed=5)
    surgery = model_of("normal").mutual_information(x)
    assert 0 <= surgery.mutual_info <= math.log(30) and math.isfinite(surgery.marginal_kl)
    with pytest.raises(
        ConfigError, match=r"^latent=normal through flow=planar's posterior has no density at"
    ):
        model_of("normal", flow=component("flow", "planar")).mutual_information(x)


def test_a_trained_run_reports_them_and_a_flow_run_neither(make_cfg):
    """Over its 100 test images: ``0 <= I^ <= log 100``, and the marginal KL is the mean KL less it."""
    metrics = train(make_cfg(*TINY, "trainer.max_epochs=1", "trainer.limit_train_batches=30", "seed=0"))
    assert 0 <= metrics["test/mutual_info"] <= math.log(100)
    assert metrics["test/marginal_kl"] == pytest.approx(
        metrics["test/kl"] - metrics["test/mutual_info"], abs=1e-4
    )
    flow = train(make_cfg(*TINY, "trainer.max_epochs=1", "trainer.limit_train_batches=5", "flow=planar"))
    assert "test/mutual_info" not in flow and "test/marginal_kl" not in flow and "test/active_units" in flow
