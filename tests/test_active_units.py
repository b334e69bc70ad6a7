"""Active units (Burda et al. 2016): the count against numpy's covariance however the images are split, over
two processes' sums, for scalar, categorical and circular units, per model of a pack, and in a trained run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import Independent, VonMises

from tests.conftest import TINY, build_model, component, mnist_like, model_of
from vae_zoo.active_units import THRESHOLD, UnitSpread
from vae_zoo.cli import train
from vae_zoo.config_groups import options
from vae_zoo.latents.categorical import CategoricalLatent
from vae_zoo.latents.von_mises import VonMisesLatent
from vae_zoo.packing.pack import pack


def numpy_count(locations: torch.Tensor) -> list[int]:
    """Per model: units whose covariance trace across images (numpy, ddof 1) exceeds the threshold."""
    counts = []
    for model in locations.detach().double().numpy():  # (images, units, coordinates)
        traces = [np.trace(np.atleast_2d(np.cov(unit, rowvar=False))) for unit in model.transpose(1, 0, 2)]
        counts.append(int(sum(trace > THRESHOLD for trace in traces)))
    return counts


def spread_locations() -> torch.Tensor:
    """Two models, 1000 images, five units of three coordinates, each coordinate's standard deviation on
    either side of the threshold (trace 3 sd^2: 0, 0.0075, 0.0087 inactive; 0.012, 0.75 active), about an
    offset of 3 that the sums must not lose the small spreads to."""
    generator = torch.Generator().manual_seed(0)
    scales = torch.tensor([[0.0, 0.05, 0.054, 0.063, 0.5], [0.063, 0.5, 0.0, 0.054, 0.063]])
    noise = torch.randn(2, 1000, 5, 3, generator=generator)
    return 3.0 + noise * scales[:, None, :, None]


def test_the_count_is_numpys_however_the_images_are_split():
    locations = spread_locations()
    assert numpy_count(locations) == [2, 3]
    for chunk in (1000, 128, 7):
        spread = UnitSpread()
        for part in locations.split(chunk, dim=1):
            spread.add(part)
        assert spread.active_units() == [2, 3]


def test_two_processes_sums_count_the_images_of_both():
    """Model 0's first unit is constant on each process's images, at another value on each: active only over
    the images of both."""
    locations = spread_locations()
    locations[0, 400:, 0] = 3.5
    assert numpy_count(locations) == [3, 3]
    first, second = UnitSpread(), UnitSpread()
    first.add(locations[:, :400])
    second.add(locations[:, 400:])
    assert first.active_units() == second.active_units() == [2, 3]
    theirs = iter([*second.sums, torch.tensor(float(second.images), dtype=torch.float64)])
    assert first.active_units(lambda mine: mine + next(theirs)) == [3, 3]


def test_a_categorical_unit_is_its_probability_vector():
    latent = CategoricalLatent(in_features=6, n=3, k=4)
    q = latent.posterior(torch.randn(50, 6))
    locations = latent.unit_locations(q)
    assert locations.shape == (50, 3, 4)
    torch.testing.assert_close(locations, q.mean)
    torch.testing.assert_close(locations.sum(-1), torch.ones(50, 3))


def test_an_angle_that_stays_put_is_inactive_where_the_circle_is_cut():
    """Mean directions straddling pi (located at about +pi and -pi) are one direction: inactive; angles spread
    round the circle are active. The angles' own variance would count both."""
    generator = torch.Generator().manual_seed(1)
    straddling = math.pi + 1e-3 * torch.randn(500, generator=generator)
    spread_round = 2 * math.pi * torch.rand(500, generator=generator) - math.pi
    q = Independent(VonMises(torch.stack([straddling, spread_round], -1), torch.ones(500, 2)), 1)
    latent = VonMisesLatent(in_features=4, dim=2)
    assert latent.location(q)[:, 0].var() > 1  # the cut: about half at +pi, half at -pi
    spread = UnitSpread()
    spread.add(latent.unit_locations(q).unsqueeze(0))
    assert spread.active_units() == [1]
    assert numpy_count(latent.unit_locations(q).unsqueeze(0)) == [1]


def gaussian_model(seed: int, used: int):
    """A Normal model with six units of which the first ``used`` read the image strongly and the rest not
    at all (their mean is the head's bias for every image)."""
    torch.manual_seed(seed)
    model = build_model(latent_settings={"dim": 6}).model.eval()
    with torch.no_grad():
        model.latent.head.weight[:used] *= 50
        model.latent.head.weight[used:6] = 0
    return model


def test_units_that_ignore_the_image_are_inactive_and_a_pack_counts_each_model_alone():
    x = mnist_like(300, seed=2)
    models = [gaussian_model(seed=0, used=4), gaussian_model(seed=1, used=2)]
    counts = []
    for model in models:
        spread = UnitSpread()
        spread.add(model.unit_locations(model.posterior(x)))
        counts.append(spread.active_units()[0])
        assert numpy_count(model.encode(x).mean.reshape(1, 300, 6, 1)) == [counts[-1]]
    assert counts == [4, 2]
    assert [model.active_units(x) for model in models] == counts
    packed = pack(models)
    spread = UnitSpread()
    spread.add(packed.unit_locations(packed.posterior(torch.cat([x, x]))))
    assert spread.active_units() == counts


def test_a_trained_run_reports_them(make_cfg):
    metrics = train(make_cfg(*TINY, "trainer.max_epochs=1", "trainer.limit_train_batches=100", "seed=0"))
    assert 1 <= metrics["test/active_units"] <= 8  # model.latent.dim=8


@pytest.mark.parametrize(
    ("latent", "flow"),
    [(latent, "none") for latent in sorted(options("latent"))] + [("normal", "planar"), ("normal", "iaf")],
)
def test_every_latent_family_and_flow_locates_each_of_its_units(latent, flow):
    """One location per unit of the posterior's event (a scalar, a probability vector, an angle's direction),
    finite, for every image; the count lies between none and every unit."""
    torch.manual_seed(0)
    model = model_of(latent, flow=component("flow", flow))
    x = mnist_like(40, seed=4)
    locations = model.unit_locations(model.posterior(x))
    units = model.encode(x).event_shape[0]
    assert locations.shape[:3] == (1, 40, units) and torch.isfinite(locations).all()
    spread = UnitSpread()
    spread.add(locations)
    assert 0 <= spread.active_units()[0] <= units
