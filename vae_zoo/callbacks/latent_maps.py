"""The two classic pictures of a two-dimensional latent space (Kingma & Welling 2014, fig. 4)."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import Tensor
from torchvision.utils import make_grid, save_image

from vae_zoo.sampling import PriorQuantiles, prior_of_class
from vae_zoo.trackers import figure_pixels, log_image


def prior_quantile_grid(prior, steps: int) -> Tensor:
    """``(steps * steps, 2)`` latent points at the prior's quantile levels ``0.05 ... 0.95`` per
    coordinate (``PriorQuantiles``: any family, no inverse CDF needed); row-major, the first coordinate
    varying along rows, the second decreasing down the columns."""
    levels = torch.linspace(0.05, 0.95, steps)
    second, first = torch.meshgrid(levels.flip(0), levels, indexing="ij")
    return PriorQuantiles(prior).quantile(torch.stack([first, second], dim=-1).reshape(-1, 2))


class LatentMaps(pl.Callback):
    """After testing, for a latent of two scalar coordinates: ``latent/posterior_locations`` (the first
    ``num_points`` test images' posterior locations, coloured by label where the data has labels) and
    ``latent/manifold`` (images decoded on a ``grid`` x ``grid`` lattice of prior quantiles), to every
    tracker that takes images and as PNG files in ``dirpath``. Other latents: nothing."""

    def __init__(self, dirpath: str, num_points: int = 5000, grid: int = 20) -> None:
        self.dirpath = Path(dirpath)
        self.num_points = num_points
        self.grid = grid

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.draw(trainer, pl_module, trainer.datamodule, trainer.loggers)

    def draw(self, trainer: pl.Trainer, pl_module: pl.LightningModule, datamodule, loggers: list) -> None:
        """The two pictures of ``pl_module``'s model on ``datamodule``'s test images, to ``dirpath`` and
        ``loggers`` at the trainer's step (a pack draws each job's after its final test)."""
        model = pl_module.model
        # a conditional model's manifold is drawn for class 0: through that class's prior
        latent, prior = model.latent, prior_of_class(model, None if model.condition is None else 0)
        if tuple(prior.event_shape) != (2,) or not trainer.is_global_zero:
            return
        was_training = pl_module.training
        pl_module.eval()
        x = datamodule.sample_images("test", self.num_points).to(pl_module.device)
        labels = datamodule.test_labels()
        labels = None if labels is None else torch.as_tensor(labels[: len(x)])
        # a conditional model's posterior is given each image's class, its manifold drawn for class 0
        given = model.condition is not None
        batches = x.split(500)
        classes = labels.to(x.device).split(500) if given else [None] * len(batches)
        with torch.no_grad(), model.autocast_off():
            points = torch.cat([latent.location(model.encode(b, y)) for b, y in zip(batches, classes)]).cpu()
        z = prior_quantile_grid(prior, self.grid).to(pl_module.device)
        first_class = torch.zeros(len(z), dtype=torch.long, device=z.device) if given else None
        with torch.no_grad():
            manifold = make_grid(model.pixel_means(z, first_class).float().cpu(), nrow=self.grid, padding=0)
        pl_module.train(was_training)
        figure = self.scatter(points, labels, type(latent).__name__)
        self.dirpath.mkdir(parents=True, exist_ok=True)
        figure.canvas.print_png(self.dirpath / "latent_posterior_locations.png")
        save_image(manifold, self.dirpath / "latent_manifold.png")
        locations = figure_pixels(figure)
        for logger in loggers:
            log_image(logger, "latent/posterior_locations", locations, trainer.global_step)
            log_image(logger, "latent/manifold", manifold, trainer.global_step)

    @staticmethod
    def scatter(points: Tensor, labels: Tensor | None, title: str):
        """A matplotlib figure (imported here: only 2-d latents draw one)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        figure = Figure(figsize=(6, 5.5), dpi=120)
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        if labels is None:
            axes.scatter(points[:, 0], points[:, 1], s=2, color="tab:blue")
        else:
            dots = axes.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=2, vmin=-0.5, vmax=9.5)
            figure.colorbar(dots, ax=axes, ticks=range(10), label="label")
        axes.set(xlabel="z1", ylabel="z2", title=f"{title}: posterior locations of {len(points)} test images")
        return figure
