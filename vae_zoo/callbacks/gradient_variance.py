"""The variance of the encoder's gradient estimate, measured as training goes on."""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch

from vae_zoo.data.tensor_batches import images_and_labels
from vae_zoo.errors import ConfigError


class GradientVariance(pl.Callback):
    """Every ``every_n_steps`` optimizer steps (and at step 0): ``draws`` independent estimates of the
    training loss's gradient with respect to the encoder side (encoder and latent head), on one fixed batch
    of the first ``images`` validation images, with the weights of that step. Logs
    ``train/grad_log10_variance``, log10 of the trace of their covariance (the summed per-coordinate
    variance of the batch-mean gradient), and ``train/grad_log10_mean_norm2``, log10 of the squared norm of
    their mean, against the global step. Drawn in eval mode with a forked random state, so training's
    random streams and the estimators' running statistics (baselines, NVIL's centring) are unchanged."""

    def __init__(self, every_n_steps: int = 1000, draws: int = 20, images: int = 100) -> None:
        if every_n_steps < 1 or draws < 2 or images < 1:
            raise ConfigError(
                f"callbacks.gradient_variance: every_n_steps={every_n_steps} and images={images} must be >= 1, "
                f"draws={draws} >= 2"
            )
        self.every_n_steps, self.draws, self.images = every_n_steps, draws, images

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int
    ) -> None:
        if self.due(trainer, trainer.loggers):
            self.draw(trainer, pl_module, trainer.datamodule, trainer.loggers)

    def due(self, trainer: pl.Trainer, loggers: list) -> bool:
        """Whether this step measures: every ``every_n_steps`` (and step 0), on the first process."""
        return trainer.global_step % self.every_n_steps == 0 and trainer.is_global_zero

    def draw(self, trainer: pl.Trainer, pl_module: pl.LightningModule, datamodule, loggers: list) -> None:
        """The measurement for ``pl_module`` on ``datamodule``'s first validation images, to ``loggers`` at the
        trainer's step (a pack measures each job's: ``vae_zoo.packing.job_diagnostics``)."""
        x, labels = images_and_labels(next(iter(datamodule.val_dataloader())))
        labels = None if labels is None else labels[: self.images].to(pl_module.device)
        with pl_module.model.given(labels):
            variance, mean_norm2 = self.measure(pl_module, x[: self.images].to(pl_module.device))
        values = {
            "train/grad_log10_variance": math.log10(max(variance, 1e-30)),
            "train/grad_log10_mean_norm2": math.log10(max(mean_norm2, 1e-30)),
        }
        for logger in loggers:  # once per measurement, at its step (not repeated on later steps)
            logger.log_metrics(values, step=trainer.global_step)

    def measure(self, pl_module: pl.LightningModule, x: torch.Tensor) -> tuple[float, float]:
        """(trace of the covariance, squared norm of the mean) of ``draws`` gradient estimates on ``x``."""
        params = [*pl_module.model.encoder.parameters(), *pl_module.model.latent.head.parameters()]
        was_training = pl_module.training
        pl_module.eval()
        estimates = []
        with (
            torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []),
            torch.enable_grad(),
        ):
            for _ in range(self.draws):
                grads = torch.autograd.grad(pl_module.training_loss(x).loss, params, allow_unused=True)
                estimates.append(torch.cat([g.flatten() for g in grads if g is not None]).double())
        pl_module.train(was_training)
        stacked = torch.stack(estimates)
        return stacked.var(0).sum().item(), stacked.mean(0).square().sum().item()
