"""Pictures of a trained model: prior samples, reconstructions, interpolations and latent traversals.

Latents of scalar coordinates move through the prior's quantiles, read from sorted prior draws, so every
family works without an inverse CDF: an interpolation from ``a`` to ``b`` is linear in the quantile
levels ``F(a)`` to ``F(b)`` (linear in z for the Normal; along the shorter arc for angles), a traversal
sweeps one coordinate over the levels 0.05 ... 0.95, and ``temperature`` t draws prior samples at the
levels ``0.5 + t (u - 0.5)``. Latents on a simplex (categorical, Dirichlet) interpolate by convex
combination, and unit vectors (von Mises-Fisher) along great circles; neither has traversals. Pixels are the
likelihood's means.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import torch
from torch import Tensor
from torch.distributions import Distribution, Normal
from torchvision.utils import save_image

from vae_zoo.capabilities import coordinates
from vae_zoo.errors import ConfigError

PRIOR_DRAWS = 100_000


class PriorQuantiles:
    """The empirical CDF and quantile function of each coordinate of a prior, from sorted draws."""

    def __init__(self, prior, draws: int = PRIOR_DRAWS) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            # (draws, D): a class's conditional prior (batch (1,)) drawn as an unconditional one
            drawn = prior.sample((draws,)).reshape(draws, -1)
            self.sorted = drawn.float().cpu().sort(dim=0).values.T.contiguous()  # (D, N)

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


def prior_of_class(model, label: int | None) -> Distribution:
    """``p(z)`` as the pictures draw it: given class ``label`` for a conditional model (a conditional prior's
    ``p(z|y)`` of that class, batch ``(1,)``), an unconditional model's own (``label`` None)."""
    labels = None if label is None else torch.tensor([label], device=model.device_marker.device)
    return model.latent_prior(labels)


def great_circle(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Unit vectors from ``a`` to ``b`` along the great circle through them, at fractions ``t`` of the angle
    ``theta`` between them: ``(sin((1 - t) theta) a + sin(t theta) b) / sin theta``; linear where ``a`` and ``b``
    coincide or are opposite (``sin theta`` = 0: no one great circle joins opposite points)."""
    theta = torch.arccos((a * b).sum(-1, keepdim=True).clamp(-1, 1))
    sin_theta = torch.sin(theta)
    apart = sin_theta > 1e-6
    safe = torch.where(apart, sin_theta, 1.0)
    arc = (torch.sin((1 - t) * theta) * a + torch.sin(t * theta) * b) / safe
    return torch.where(apart, arc, (1 - t) * a + t * b)


def interpolate(latent, prior, quantiles: PriorQuantiles | None, a: Tensor, b: Tensor, steps: int) -> Tensor:
    """``steps`` points from ``a`` to ``b`` (each ``(..., *event)``), stacked on a new second-to-first dim."""
    t = torch.linspace(0, 1, steps).reshape(-1, *([1] * a.dim()))
    if latent.spherical:
        return great_circle(a, b, t)
    if quantiles is None or isinstance(coordinates(prior), Normal):
        return (1 - t) * a + t * b  # linear: the Normal, and convex combinations on a simplex
    if latent.circular:
        return a + t * torch.atan2(torch.sin(b - a), torch.cos(b - a))
    return quantiles.quantile((1 - t) * quantiles.cdf(a) + t * quantiles.cdf(b))


def labelled_rows(
    path: Path, rows: Tensor, row_labels: list[str], column_labels: list[list[str]], title: str
) -> None:
    """``rows`` of images ``(R, S, C, H, W)`` as one PNG: each row a strip with its label on the left and
    one label under each image (matplotlib, imported here: only sample.py draws these)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    count, steps, channels, height, width = rows.shape
    scale = max(1, round(56 / height))  # small images drawn at least ~56 px tall
    strip_width, strip_height = steps * width * scale / 100, height * scale / 100
    figure_width = max(strip_width + 1.4, 4.0)
    figure = Figure(
        figsize=(figure_width, count * (strip_height + 0.35) + 0.6), dpi=100, layout="constrained"
    )
    FigureCanvasAgg(figure)
    figure.suptitle(textwrap.fill(title, int(figure_width * 14)), fontsize=9)
    for index, (row, name, labels) in enumerate(zip(rows, row_labels, column_labels)):
        axes = figure.add_subplot(count, 1, index + 1)
        strip = row.permute(1, 2, 0, 3).reshape(channels, height, steps * width).permute(1, 2, 0).numpy()
        axes.imshow(
            strip.squeeze(-1) if channels == 1 else strip,
            cmap="gray",
            vmin=0,
            vmax=1,
            interpolation="nearest",
        )
        axes.set_xticks([width * (i + 0.5) for i in range(steps)], labels, fontsize=7)
        axes.set_yticks([])
        axes.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
        axes.tick_params(length=0)
    figure.canvas.print_png(path)


def values(row: Tensor) -> list[str]:
    return [f"{value:.3g}" for value in row.tolist()]


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
    ``traversals.png`` in ``out_dir``; the same pictures for the same ``seed``. Traversals label each row
    with its coordinate and each image with the coordinate's value there; interpolations label their
    endpoints (the test images' indices) and the mixing level. Without a ``datamodule`` (no test images),
    the prior samples alone, and traversals around the prior's median. A conditional model's samples are
    one row of ``sqrt(n)`` per class (drawn from that class's ``p(z|y)`` where the prior is conditional); its
    test images are decoded with their own class (interpolations with the first endpoint's, traversals with test
    image 0's, through the quantiles of that class's prior; class 0 without test images), and ``analogies.png``
    decodes the posterior of ``pairs`` test images with every class (same ``z``, each ``y``)."""
    if min(n, pairs, steps, dims) < 1 or not 0 < temperature <= 1:
        raise ConfigError(
            f"grids.n={n}, pairs={pairs}, steps={steps}, dims={dims} must be >= 1 and "
            f"grids.temperature={temperature} in (0, 1]"
        )
    model.eval()
    torch.manual_seed(seed)
    classes = model.condition.classes if model.condition is not None else None
    latent, prior = model.latent, prior_of_class(model, None if classes is None else 0)
    scalar = len(prior.event_shape) == 1 and not latent.spherical
    if not scalar and temperature != 1:
        raise ConfigError(
            f"grids.temperature={temperature} needs a latent of scalar coordinates that vary apart (not points on a "
            "simplex or a sphere); use 1.0"
        )
    quantiles = PriorQuantiles(prior) if scalar else None
    per_class = bool(prior.batch_shape)  # a conditional prior p(z|y): drawn and read for each row's class
    decode = lambda z, y=None: model.pixel_means(z, y).float().clamp(0, 1).cpu()
    out_dir.mkdir(parents=True, exist_ok=True)
    per_row = int(math.sqrt(n)) or 1
    written = [out_dir / "samples.png"]

    count = n if classes is None else classes * per_row
    y = None if classes is None else torch.arange(classes).repeat_interleave(per_row)
    with model.autocast_off():
        if temperature == 1:
            with model.given_labels(y, count):
                z = model.prior_samples(count)
        else:
            u = 0.5 + temperature * (torch.rand(count, *prior.event_shape) - 0.5)
            if per_class:  # each row of classes at its own class's quantiles
                parts = u.split(per_row)
                z = torch.cat(
                    [PriorQuantiles(prior_of_class(model, k)).quantile(p) for k, p in enumerate(parts)]
                )
            else:
                z = quantiles.quantile(u)
    if classes is None:
        save_image(decode(z), written[-1], nrow=per_row, pad_value=1.0)
    else:
        labelled_rows(
            written[-1],
            decode(z, y).unflatten(0, (classes, per_row)),
            [f"y={k}" for k in range(classes)],
            [[""] * per_row] * classes,
            "prior samples"
            + (" z ~ p(z|y)" if per_class else "")
            + " decoded with each class y (one row per class)",
        )

    first_class = torch.zeros(steps, dtype=torch.long) if classes is not None else None
    if datamodule is not None:
        x = datamodule.sample_images("test", max(n, 2 * pairs)).cpu()
        y = datamodule.sample_labels("test", len(x)).cpu() if classes is not None else None
        locations = latent.location(model.encode(x, y))
        originals, rebuilt = x[:n], decode(locations[:n], None if y is None else y[:n])
        rows = [row for pair in zip(originals.split(per_row), rebuilt.split(per_row)) for row in pair]
        written.append(out_dir / "reconstructions.png")
        save_image(torch.cat(rows), written[-1], nrow=per_row, pad_value=1.0)

        if per_class:  # interpolations and traversals move through the prior of test image 0's class
            prior = prior_of_class(model, int(y[0]))
            quantiles = PriorQuantiles(prior)
        a, b = locations[:pairs], locations[pairs : 2 * pairs]
        # (steps, pairs, *event), each step moved onto the support where it is discrete (a codebook)
        path = latent.onto_support(interpolate(latent, prior, quantiles, a, b, steps))
        decoded = decode(path, None if y is None else y[:pairs]).transpose(0, 1)
        grid = torch.cat([x[:pairs, None], decoded, x[pairs : 2 * pairs, None]], dim=1)
        levels = [f"t={t:.2g}" for t in torch.linspace(0, 1, steps).tolist()]
        written.append(out_dir / "interpolations.png")
        labelled_rows(
            written[-1],
            grid,
            [f"test {i} -> {pairs + i}" for i in range(pairs)],
            [[f"test {i}", *levels, f"test {pairs + i}"] for i in range(pairs)],
            "interpolations between the posterior locations of two test images (t: quantile-space mixing level)"
            + (", decoded with the first image's class" if classes is not None else ""),
        )
        centre, around = locations[0], "the posterior location of test image 0"
        if classes is not None:
            first_class = y[:1].expand(steps)
            analogies = torch.stack(
                [decode(locations[:pairs], torch.full((pairs,), k)) for k in range(classes)], 1
            )
            written.append(out_dir / "analogies.png")
            labelled_rows(
                written[-1],
                torch.cat([x[:pairs, None], analogies], dim=1),
                [f"test {i} (y={y[i].item()})" for i in range(pairs)],
                [[f"test {i}", *(f"y={k}" for k in range(classes))] for i in range(pairs)],
                "analogies: each test image's posterior location decoded with every class (same z, each y)",
            )
    elif scalar:
        centre, around = quantiles.quantile(torch.full((1, prior.event_shape[0]), 0.5))[0], "the prior median"

    if scalar:
        levels = torch.linspace(0.05, 0.95, steps)
        count = min(dims, prior.event_shape[0])
        sweep = quantiles.quantile(levels[:, None].expand(steps, prior.event_shape[0]))  # (steps, D)
        z = centre.expand(count, steps, -1).clone()
        for d in range(count):
            z[d, :, d] = sweep[:, d]
        written.append(out_dir / "traversals.png")
        labelled_rows(
            written[-1],
            decode(z, first_class),
            [f"z[{d}]" for d in range(count)],
            [values(sweep[:, d]) for d in range(count)],
            f"one coordinate at a time through the prior's quantiles 0.05 ... 0.95, around {around}"
            + (f", decoded with class {first_class[0].item()}" if classes is not None else ""),
        )
    return written
