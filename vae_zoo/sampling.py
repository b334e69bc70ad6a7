"""Pictures of a trained model: prior samples, reconstructions, interpolations and latent traversals.

Latents of scalar coordinates move through the prior's quantiles, read from sorted prior draws, so every
family works without an inverse CDF: an interpolation from ``a`` to ``b`` is linear in the quantile
levels ``F(a)`` to ``F(b)`` (linear in z for the Normal; along the shorter arc for angles), a traversal
sweeps one coordinate over the levels 0.05 ... 0.95, and ``temperature`` t draws prior samples at the
levels ``0.5 + t (u - 0.5)``. Latents on a simplex (categorical, Dirichlet) interpolate by convex
combination and have no traversals. Pixels are the likelihood's means.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor
from torch.distributions import Normal
from torchvision.utils import save_image

from vae_zoo.errors import ConfigError
from vae_zoo.estimators.requirements import coordinates

PRIOR_DRAWS = 100_000


class PriorQuantiles:
    """The empirical CDF and quantile function of each coordinate of a prior, from sorted draws."""

    def __init__(self, prior, draws: int = PRIOR_DRAWS) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.sorted = prior.sample((draws,)).float().cpu().sort(dim=0).values.T.contiguous()  # (D, N)

    def cdf(self, z: Tensor) -> Tensor:
        """Levels in (0, 1) of ``z`` of shape ``(..., D)``."""
        flat = z.reshape(-1, z.shape[-1]).T.contiguous()
        rank = torch.searchsorted(self.sorted, flat).T.reshape(z.shape)
        return (rank.float() + 0.5) / (self.sorted.shape[1] + 1)

    def quantile(self, u: Tensor) -> Tensor:
        """Coordinates ``(..., D)`` at levels ``u`` of the same shape."""
        index = (u * (self.sorted.shape[1] - 1)).round().long().clamp(0, self.sorted.shape[1] - 1)
        flat = index.reshape(-1, u.shape[-1]).T
        return torch.gather(self.sorted, 1, flat).T.reshape(u.shape)


def interpolate(latent, quantiles: PriorQuantiles | None, a: Tensor, b: Tensor, steps: int) -> Tensor:
    """``steps`` points from ``a`` to ``b`` (each ``(..., *event)``), stacked on a new second-to-first dim."""
    t = torch.linspace(0, 1, steps).reshape(-1, *([1] * a.dim()))
    if quantiles is None or isinstance(coordinates(latent.prior()), Normal):
        return (1 - t) * a + t * b  # linear: the Normal, and convex combinations on a simplex
    if getattr(latent, "circular", False):
        return a + t * torch.atan2(torch.sin(b - a), torch.cos(b - a))
    return quantiles.quantile((1 - t) * quantiles.cdf(a) + t * quantiles.cdf(b))


@torch.no_grad()
def write_grids(
    model,
    datamodule,
    out_dir: Path,
    n: int = 64,
    pairs: int = 8,
    steps: int = 10,
    dims: int = 10,
    temperature: float = 1.0,
    seed: int = 0,
) -> list[Path]:
    """``samples.png``, ``reconstructions.png``, ``interpolations.png`` and (scalar latents)
    ``traversals.png`` in ``out_dir``; the same pictures for the same ``seed``."""
    if min(n, pairs, steps, dims) < 1 or not 0 < temperature <= 1:
        raise ConfigError(
            f"grids.n={n}, pairs={pairs}, steps={steps}, dims={dims} must be >= 1 and "
            f"grids.temperature={temperature} in (0, 1]"
        )
    model.eval()
    torch.manual_seed(seed)
    latent, prior = model.latent, model.latent.prior()
    scalar = len(prior.event_shape) == 1
    if not scalar and temperature != 1:
        raise ConfigError(f"grids.temperature={temperature} needs a latent of scalar coordinates; use 1.0")
    quantiles = PriorQuantiles(prior) if scalar else None
    decode = lambda z: model.pixel_means(z).float().clamp(0, 1).cpu()
    out_dir.mkdir(parents=True, exist_ok=True)
    per_row = int(math.sqrt(n)) or 1
    written = []

    with model.float32():
        if temperature == 1:
            z = prior.sample((n,))
        else:
            u = 0.5 + temperature * (torch.rand(n, *prior.event_shape) - 0.5)
            z = quantiles.quantile(u)
    written.append(out_dir / "samples.png")
    save_image(decode(z), written[-1], nrow=per_row, pad_value=1.0)

    x = datamodule.sample_images("test", max(n, 2 * pairs)).cpu()
    locations = latent.location(model.posterior(x))
    originals, rebuilt = x[:n], decode(locations[:n])
    rows = [row for pair in zip(originals.split(per_row), rebuilt.split(per_row)) for row in pair]
    written.append(out_dir / "reconstructions.png")
    save_image(torch.cat(rows), written[-1], nrow=per_row, pad_value=1.0)

    a, b = locations[:pairs], locations[pairs : 2 * pairs]
    path = interpolate(latent, quantiles, a, b, steps).transpose(0, 1)  # (pairs, steps, *event)
    ends = lambda images: images.unsqueeze(1)
    grid = torch.cat([ends(x[:pairs]), decode(path), ends(x[pairs : 2 * pairs])], dim=1)
    written.append(out_dir / "interpolations.png")
    save_image(grid.flatten(0, 1), written[-1], nrow=steps + 2, pad_value=1.0)

    if scalar:
        levels = torch.linspace(0.05, 0.95, steps)
        count = min(dims, prior.event_shape[0])
        sweep = quantiles.quantile(levels[:, None].expand(steps, prior.event_shape[0]))  # (steps, D)
        z = locations[0].expand(count, steps, -1).clone()
        for d in range(count):
            z[d, :, d] = sweep[:, d]
        written.append(out_dir / "traversals.png")
        save_image(decode(z).flatten(0, 1), written[-1], nrow=steps, pad_value=1.0)
    return written
