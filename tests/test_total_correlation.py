"""``objective.tc_weight`` (Chen et al. 2018's beta-TCVAE): the batch's stratified estimate of the aggregate
posterior against exact sums over a small training set (exact on the whole set, unbiased over every batch), the
loss against its formula, each packed model's estimate from its own images, and the refusals in one line."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch.distributions import Independent, Normal

from tests.conftest import build_model, flat_gradient, refusal
from tests.test_packing_conformance import NETS, SHORT
from vae_zoo.data.tensor_batches import images_and_labels
from vae_zoo.errors import ConfigError
from vae_zoo.objectives.total_correlation import log_aggregate, total_correlation
from vae_zoo.packed_batch import per_image_copies
from vae_zoo.packing.train_pack import PackJob, build_pack

UNITS = 3


def _posteriors(images: int) -> Normal:
    """Each image's Normal posterior over 3 units (float64), narrower than the spread of their means."""
    generator = torch.Generator().manual_seed(0)
    loc = torch.randn(images, UNITS, generator=generator, dtype=torch.float64)
    scale = 0.2 + 0.3 * torch.rand(images, UNITS, generator=generator, dtype=torch.float64)
    return Normal(loc, scale)


def _exact_log_aggregate(q: Normal, z: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """``log q(z_i)`` and each unit's ``log q(z_iu)`` under the aggregate ``(1/N) sum_n q(.|x_n)``, by scipy."""
    loc, scale, z = q.loc.numpy(), q.scale.numpy(), z.numpy()
    densities = stats.norm.pdf(z[:, None, :], loc[None], scale[None])  # (i, n, u)
    return np.log(densities.prod(-1).mean(1)), np.log(densities.mean(1))


def _unit_log_probs(q: Normal):
    return lambda values: q.log_prob(values)


def test_on_the_whole_training_set_the_estimate_is_the_exact_aggregate_posterior():
    """With the batch the whole training set (M = N) the stratified weights are all 1/N: ``log q^(z_i)`` and each
    unit's are the aggregate posterior's exactly, and so is the total correlation."""
    q = _posteriors(5)
    torch.manual_seed(0)
    z = q.sample()
    joint, marginals = _exact_log_aggregate(q, z)
    pairs = q.log_prob(z.unsqueeze(1))  # (i, j, u)
    np.testing.assert_allclose(log_aggregate(pairs.sum(-1), 5).numpy(), joint, rtol=1e-12)
    np.testing.assert_allclose(log_aggregate(pairs.movedim(-1, 0), 5).numpy(), marginals.T, rtol=1e-12)
    tc = total_correlation(_unit_log_probs(q), z, models=1, training_images=5)
    np.testing.assert_allclose(tc.numpy(), joint - marginals.sum(-1), rtol=1e-10)


def test_the_estimate_of_the_aggregate_density_is_unbiased_over_every_batch_holding_the_image():
    """N = 6 images, batches of M = 3: the mean of ``q^(z_i)`` over the 10 batches that hold image i (i and two of
    the other five) is the exact ``q(z_i)``, jointly and in each unit. The plain batch mean, every image of the
    batch weighed ``1/M``, over-weighs the image's own posterior (up to N / M times where it dominates, as here),
    so the test can fail."""
    n, m = 6, 3
    q = _posteriors(n)
    torch.manual_seed(1)
    z = q.sample()
    joint, marginals = _exact_log_aggregate(q, z)
    pairs = q.log_prob(z.unsqueeze(1))  # (i, j, u) over the whole set
    for i in range(n):
        others = [j for j in range(n) if j != i]
        batches = [[i, *rest] for rest in itertools.combinations(others, m - 1)]
        estimates, plain = [], []
        for batch in batches:
            block = pairs[batch][:, batch]  # image i in row 0
            estimates.append(
                torch.cat([log_aggregate(block.sum(-1), n)[:1], log_aggregate(block.movedim(-1, 0), n)[:, 0]])
            )
            plain.append(torch.logsumexp(block.sum(-1)[0], 0) - math.log(m))
        mean = torch.stack(estimates).exp().mean(0).numpy()
        np.testing.assert_allclose(mean, np.exp([joint[i], *marginals[i]]), rtol=1e-12)
        assert torch.stack(plain).exp().mean().item() / math.exp(joint[i]) > 1.2


def test_packed_blocks_are_each_models_own():
    """Two models' batches side by side in one packed batch: each image's estimate is the one from its own
    model's images alone."""
    q = _posteriors(8)
    torch.manual_seed(2)
    z = q.sample()
    packed = total_correlation(_unit_log_probs(q), z, models=2, training_images=100)
    for own in (slice(0, 4), slice(4, 8)):
        alone = Normal(q.loc[own], q.scale[own])
        torch.testing.assert_close(packed[own], total_correlation(_unit_log_probs(alone), z[own], 1, 100))
    assert not torch.allclose(packed, total_correlation(_unit_log_probs(q), z, 1, 100))


def _batch(n: int = 16) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0)).bernoulli()


def _model(tc_weight: float, latent: str = "normal", estimator: str = "pathwise", **settings):
    torch.manual_seed(0)
    vae = build_model(
        latent=latent, estimator=estimator, objective_settings={"tc_weight": tc_weight, **settings}
    )
    vae.objective.training_images = 1000
    return vae


@pytest.mark.parametrize(("latent", "estimator"), [("normal", "pathwise"), ("gamma", "implicit")])
def test_the_loss_is_the_elbo_with_the_total_correlation_weighed_apart(latent, estimator):
    """``recon + beta (KL + (w - 1) TC)`` at the training sample, its gradient too (through the sample and every
    image's posterior in the aggregate); the reported terms are the ELBO's and the estimate's."""
    x, beta, weight = _batch(), 0.5, 4.0
    vae = _model(weight, latent, estimator, beta=beta)
    torch.manual_seed(1)
    loss, terms = vae.objective(vae.model, x)
    torch.manual_seed(1)
    q = vae.model.posterior(x)
    z = vae.model.training_sample(q).value
    recon, kl = vae.model.nll(x, z), vae.model.kl(q)
    units = Independent(q.base_dist, 0)  # the same units, read directly from torch's distribution
    tc = total_correlation(lambda values: units.log_prob(values), z, 1, 1000)
    reference = (recon + beta * (kl + (weight - 1) * tc)).mean()
    torch.testing.assert_close(loss, reference)
    torch.testing.assert_close(flat_gradient(vae, loss), flat_gradient(vae, reference))
    torch.testing.assert_close(terms["tc"], tc.mean().detach())
    torch.testing.assert_close(terms["elbo"], (recon + kl).mean().detach())
    assert not torch.allclose(flat_gradient(vae, loss), flat_gradient(vae, (recon + beta * kl).mean()))


def test_a_weight_of_one_is_the_elbo_bit_for_bit():
    x = _batch()
    torch.manual_seed(0)
    plain = build_model()
    weighed = _model(1.0)
    torch.manual_seed(3)
    elbo, _terms = plain.objective(plain.model, x)
    torch.manual_seed(3)
    same, terms = weighed.objective(weighed.model, x)
    assert torch.equal(elbo, same) and "tc" not in terms


def test_each_packed_model_estimates_its_aggregate_from_its_own_images(make_cfg):
    """A pack of two (seeds 0 and 1): each model's estimate on a packed batch is its unpacked run's on its own half
    (the training set's size set as the Trainer sets it, ``PackedVAE.setup``; the packing grid trains it)."""
    cfgs = [make_cfg(*NETS, *SHORT, "objective.tc_weight=4", f"seed={seed}") for seed in (0, 1)]
    datamodule, packed = build_pack([PackJob(cfg) for cfg in cfgs])
    datamodule.setup("fit")
    packed.objective.training_images = datamodule.training_images
    x, _ = images_and_labels(next(iter(datamodule.train_dataloader())))
    rows = len(x) // 2
    with torch.no_grad(), per_image_copies(packed.model, rows):
        q = packed.model.posterior(x)
        z = q.sample()
        tc = packed.objective.total_correlation(packed.model, q, z)
        for n, run in enumerate(packed.runs):
            own = slice(n * rows, (n + 1) * rows)
            run.objective.training_images = datamodule.training_images
            alone = run.objective.total_correlation(run.model, run.model.posterior(x[own]), z[own])
            torch.testing.assert_close(tc[own], alone, rtol=1e-4, atol=1e-4)
    assert datamodule.training_images == 50000  # MNIST's 60,000 training images less the 10,000 validating


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"estimator": "score_function"},
            (
                "estimator=score_function does not pair with objective=elbo (beta=1.0, kl=analytic, tc_weight=4.0): its "
                "gradient flows through the training sample, which needs a reparameterized sample (explicit or "
                "implicit); choose one of: estimator=implicit, estimator=pathwise"
            ),
        ),
        (
            {"latent": "categorical", "estimator": "gumbel_softmax"},
            (
                "estimator=gumbel_softmax does not pair with objective=elbo (beta=1.0, kl=analytic, tc_weight=4.0): its "
                "gradient flows through the training sample, which needs a reparameterized sample (explicit or "
                "implicit); no estimator of this latent is reparameterized: set objective.tc_weight=1"
            ),
        ),
        (
            {"flow": {"_target_": "vae_zoo.flows.planar.PlanarFlow"}},
            (
                "objective=elbo (beta=1.0, kl=mc, tc_weight=4.0) needs independent latent units (an Independent over "
                "them, each with its own density), which latent=normal through flow=planar's TransformedDistribution "
                "posteriors lack -- set objective.tc_weight=1"
            ),
        ),
    ],
)
def test_what_cannot_estimate_it_is_refused_in_one_line(overrides, message):
    assert refusal(objective_settings={"tc_weight": 4.0}, **overrides) == message


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"tc_weight": -1},
            r"objective.tc_weight=-1 must be >= 0 \(the total correlation's weight in the KL",
        ),
        (
            {"tc_weight": 4, "gradient": "dreg"},
            r"and objective.gradient=dreg do not combine: .* -- set objective.gradient=total, or objective.tc_weight=1",
        ),
    ],
)
def test_its_settings_are_checked_in_one_line(settings, message):
    with pytest.raises(Exception, match=message):  # a ConfigError, raised through Hydra's instantiate
        build_model(objective_settings=settings)


def test_a_batch_of_one_image_and_an_unknown_training_set_are_refused_in_one_line():
    vae = _model(4.0)
    with pytest.raises(
        ConfigError, match=r"this batch holds one image per model -- set data.batch_size >= 2"
    ):
        vae.objective(vae.model, _batch(1))
    vae.objective.training_images = None
    with pytest.raises(ConfigError, match=r"whose size training sets at its start -- outside training set"):
        vae.objective(vae.model, _batch())
