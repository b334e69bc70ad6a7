"""``LatentMaps``: the two pictures of a 2-d latent after testing, on the prior's quantile grid; nothing for
other latents."""

from __future__ import annotations

import torch
from PIL import Image
from torch.distributions import Independent, Normal

from tests.conftest import FAST
from tests.test_training import SHORT
from vae_zoo.callbacks.latent_maps import prior_quantile_grid
from vae_zoo.cli import train


def test_the_grid_runs_over_the_priors_quantiles_first_coordinate_along_rows():
    grid = prior_quantile_grid(Independent(Normal(torch.zeros(2), torch.ones(2)), 1), steps=5)
    edge = Normal(0.0, 1.0).icdf(torch.tensor(0.95)).item()
    assert grid.shape == (25, 2)
    torch.testing.assert_close(grid[0], torch.tensor([-edge, edge]), atol=0.03, rtol=0)  # top left
    torch.testing.assert_close(grid[-1], torch.tensor([edge, -edge]), atol=0.03, rtol=0)  # bottom right
    rows = grid.reshape(5, 5, 2)
    assert torch.all(rows[:, 1:, 0] > rows[:, :-1, 0]) and torch.all(rows[1:, :, 1] < rows[:-1, :, 1])


def test_a_2d_latent_run_writes_both_pictures_and_a_wider_one_writes_none(tmp_path, make_cfg):
    for dim in (2, 4):
        out = tmp_path / f"dim{dim}"
        train(
            make_cfg(f"model.latent.dim={dim}", "callbacks.latent_maps.grid=6", *SHORT, *FAST, output_dir=out)
        )
        pictures = {p.name for p in out.glob("latent_*.png")}
        if dim == 2:
            assert pictures == {"latent_posterior_locations.png", "latent_manifold.png"}
            assert Image.open(out / "latent_manifold.png").size == (6 * 28, 6 * 28)
        else:
            assert pictures == set()
