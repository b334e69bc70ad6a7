"""What the hyperspherical latent families share (``vae_zoo.latents.hyperspherical``), for each of them: draws
uniform in direction around the mean, the sample's gradients unbiased for those of the closed-form mean, the
uniform prior, the head's mean direction and concentration, the one-line refusals, ``implicit`` going through
the family's own ``rsample``, great-circle interpolation, active units from the mean, and finite losses and
gradients from kappa 1e-5 to 1e4 on both branches of the Householder reflection."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import build_model
from vae_zoo.active_units import UnitSpread
from vae_zoo.errors import ConfigError
from vae_zoo.latents.power_spherical import PowerSphericalLatent
from vae_zoo.latents.sphere import HypersphericalUniform
from vae_zoo.latents.von_mises_fisher import VonMisesFisherLatent
from vae_zoo.sampling import great_circle

F64 = torch.float64
FAMILIES = {"von_mises_fisher": VonMisesFisherLatent, "power_spherical": PowerSphericalLatent}


def unit(m: int, seed: int = 0) -> torch.Tensor:
    return F.normalize(torch.randn(m, dtype=F64, generator=torch.Generator().manual_seed(seed)), dim=0)


def test_the_uniform_prior_draws_unit_vectors_evenly_and_has_the_spheres_density():
    torch.manual_seed(0)
    z = HypersphericalUniform(torch.zeros(5, dtype=F64)).sample((50_000,))
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(50_000, dtype=F64))
    torch.testing.assert_close(z.T @ z / len(z), torch.eye(5, dtype=F64) / 5, rtol=0, atol=0.01)
    p = HypersphericalUniform(torch.zeros(3))
    torch.testing.assert_close(p.log_prob(p.sample((4,))), torch.full((4,), -math.log(4 * math.pi)))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("m", [3, 5, 10, 40])
@pytest.mark.parametrize("kappa", [0.1, 1.0, 10.0, 1000.0])
def test_draws_are_unit_vectors_uniform_in_direction_around_the_mean(family, m, kappa):
    """20,000 draws of length 1 whose part orthogonal to ``mu``, scaled to length 1, has mean 0 and second moment
    ``(I - mu mu^T) / (m - 1)``: uniform on the sphere around ``mu``."""
    torch.manual_seed(0)
    mu = unit(m, seed=m)
    z = FAMILIES[family].distribution(mu, torch.tensor(kappa, dtype=F64)).sample((20_000,))
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(20_000, dtype=F64), rtol=0, atol=1e-12)
    side = z - (z @ mu).unsqueeze(-1) * mu
    side = side / side.norm(dim=-1, keepdim=True)
    assert side.mean(0).abs().max() < 4 / math.sqrt(len(side))
    projector = (torch.eye(m, dtype=F64) - torch.outer(mu, mu)) / (m - 1)
    torch.testing.assert_close(side.T @ side / len(side), projector, rtol=0, atol=0.02)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("m", [2, 4, 10, 40])
@pytest.mark.parametrize("kappa", [0.1, 1.0, 10.0, 1000.0])
def test_the_sample_gradients_are_unbiased_for_the_closed_form_mean(family, m, kappa):
    """``E[z] = s(kappa) mu(d)``, ``mu = d / |d|`` (the von Mises-Fisher's ``s = A(kappa)``, the power spherical's
    ``kappa / (kappa + m - 1)``): over 100,000 draws the mean pathwise gradient of ``c^T z`` in kappa and in ``d``
    equals the gradient of ``c^T`` times the closed-form ``mean``, within 4 standard errors (the gradient in ``d``
    passes the Householder reflection; the one in kappa the cosine's implicit rule)."""
    torch.manual_seed(1)
    n, distribution = 100_000, FAMILIES[family].distribution
    d = (2 * unit(m, seed=3)).expand(n, m).clone().requires_grad_()
    k = torch.full((n,), kappa, dtype=F64, requires_grad=True)
    c = unit(m, seed=4)
    z = distribution(F.normalize(d, dim=-1), k).rsample()
    d_grad, k_grad = torch.autograd.grad((z @ c).sum(), [d, k])
    d1, k1 = d[:1].detach().requires_grad_(), k[:1].detach().requires_grad_()
    expected_d, expected_k = torch.autograd.grad(distribution(F.normalize(d1, dim=-1), k1).mean @ c, [d1, k1])
    for grads, expected in ((k_grad.unsqueeze(-1), expected_k), (d_grad, expected_d[0])):
        error = (grads.mean(0) - expected).abs()
        assert torch.all(error <= 4 * grads.std(0) / math.sqrt(n) + 1e-12), (error, grads.std(0))


@pytest.mark.parametrize("family", FAMILIES)
def test_the_family_gives_a_unit_mean_direction_and_a_concentration_above_its_floor(family):
    latent = FAMILIES[family](in_features=6, dim=4, floor=0.5)
    q = latent.posterior(torch.randn(3, 6))
    assert q.batch_shape == (3,) and q.event_shape == (4,)
    torch.testing.assert_close(latent.location(q).norm(dim=-1), torch.ones(3))
    assert torch.all(q.concentration > 0.5)
    z = q.rsample((2,))
    assert z.shape == (2, 3, 4) and z.dtype == torch.float32


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"dim": 1}, "model.latent.dim=1 must be >= 2 (the sphere in R^dim; 2 is the circle)"),
        ({"floor": 0.0}, "model.latent.floor=0.0 must be > 0"),
    ],
)
@pytest.mark.parametrize("family", FAMILIES)
def test_bad_settings_are_refused_in_one_line(family, settings, message):
    with pytest.raises(ConfigError) as refused:
        FAMILIES[family](in_features=4, **settings)
    assert str(refused.value) == message


@pytest.mark.parametrize("family", FAMILIES)
def test_the_implicit_estimator_draws_the_same_sample_and_gradient_as_the_pathwise_one(family):
    """Its rsample is the implicit rule's, so ``estimator=implicit`` pairs with it and goes through it."""
    grads = []
    for estimator in ("pathwise", "implicit"):
        torch.manual_seed(0)
        model = build_model(family, estimator, latent_settings={"dim": 5})
        x = torch.rand(4, 1, 28, 28).bernoulli()
        loss = sum(model.model.negative_elbo_terms(x, model.model.estimator.sample)).mean()
        grads.append(torch.autograd.grad(loss, list(model.model.latent.parameters())))
    for ours, theirs in zip(*grads):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def test_great_circle_interpolation_stays_on_the_sphere_at_even_angles():
    a, b = unit(6, seed=1), unit(6, seed=2)
    t = torch.linspace(0, 1, 5, dtype=F64).reshape(-1, 1)
    path = great_circle(a, b, t)
    torch.testing.assert_close(path.norm(dim=-1), torch.ones(5, dtype=F64))
    torch.testing.assert_close(path[0], a)
    torch.testing.assert_close(path[-1], b)
    steps = torch.arccos((path[1:] * path[:-1]).sum(-1))
    torch.testing.assert_close(steps, torch.full((4,), torch.arccos(a @ b).item() / 4, dtype=F64))
    torch.testing.assert_close(great_circle(a, a, t), a.expand(5, 6))


@pytest.mark.parametrize("family", FAMILIES)
def test_a_spread_out_posterior_counts_as_inactive_whatever_its_direction(family):
    """Directions spread over the sphere in every coordinate: at kappa = 100 the means (``A(kappa) mu``,
    ``kappa / (kappa + 3) mu``) spread too (all four units active); at kappa = 1e-3, nearly uniform posteriors,
    the means are ~1e-4 mu and no unit is."""
    mu = F.normalize(torch.randn(500, 4, generator=torch.Generator().manual_seed(0)), dim=-1)
    latent = FAMILIES[family](in_features=4, dim=4)
    for kappa, active in ((100.0, [4]), (1e-3, [0])):
        spread = UnitSpread()
        spread.add(latent.unit_locations(latent.distribution(mu, torch.full((500,), kappa))).unsqueeze(0))
        assert spread.active_units() == active


@pytest.mark.parametrize("autocast", [None, torch.bfloat16])
@pytest.mark.parametrize("objective", ["elbo", "iwae"])
@pytest.mark.parametrize("estimator", ["pathwise", "score_function"])
@pytest.mark.parametrize("family", FAMILIES)
def test_finite_loss_and_gradients_from_kappa_1e_minus_5_to_1e4_and_on_either_side_of_the_first_axis(
    family, estimator, objective, autocast
):
    """The head's bias sets every image's direction and concentration: directions ``e_1``, ``-e_1`` and one
    between (the reflection's two branches and its switch), kappa from the floor 1e-5 to 1e4."""
    directions = torch.tensor(
        [[1.0, 0, 0, 0, 0], [-1.0, 0, 0, 0, 0], [0.0, 1.0, 0, 0, 0], [0.3, -0.2, 0.5, 0.1, 0]]
    )
    torch.manual_seed(3)
    model = build_model(family, estimator, objective, latent_settings={"dim": 5, "floor": 1e-5})
    context = torch.autocast("cpu", dtype=autocast) if autocast else torch.autocast("cpu", enabled=False)
    for kappa in torch.logspace(-5, 4, 10):
        for direction in directions:
            model.zero_grad()
            raw = kappa - 1e-5
            raw_concentration = raw + torch.log(-torch.expm1(-raw))  # softplus^-1
            with torch.no_grad():
                model.model.latent.head.weight.zero_()
                model.model.latent.head.bias.copy_(torch.cat([direction, raw_concentration.reshape(1)]))
            x = torch.rand(4, 1, 28, 28).bernoulli()
            with context:
                loss, terms = model.objective(model.model, x)
            assert torch.isfinite(loss) and all(torch.isfinite(value) for value in terms.values()), kappa
            loss.backward()
            assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None), kappa
