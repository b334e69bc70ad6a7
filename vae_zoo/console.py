"""What the terminal shows: Lightning's info lines (tips, device lists, checkpoint restores) go to the
job's log file only, and one line says what trains where."""

from __future__ import annotations

import logging

import pytorch_lightning as pl
from omegaconf import DictConfig

from vae_zoo.run_identity import UNREMARKABLE, run_identity

LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning_fabric")


class LightningInfoToFileOnly(logging.Filter):
    """On the console handler (``hydra/default.yaml``): drops Lightning's records below WARNING; the
    file handler (``<run dir>/<job>.log``) still gets them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not record.name.startswith(LIGHTNING_LOGGERS)


def route_lightning_logs_through_hydra() -> None:
    """Lightning gives its loggers a console handler of their own when imported before logging is
    configured (as here, before Hydra's); hand their records to the root handlers Hydra set up instead."""
    if not logging.getLogger().handlers:
        return  # no Hydra logging (a library call): keep Lightning's own console output
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True


def start_line(cfg: DictConfig, trainer: pl.Trainer, output_dir: str) -> str:
    """``train: gaussian_vae (latent=normal, estimator=pathwise, objective=elbo, likelihood=bernoulli) on
    mnist | cpu, 32-true | outputs/<date>/<time>``, naming the prior and flow too where they are not the
    family's own and none."""
    identity = run_identity(cfg)
    keys = ["latent", "estimator", "objective", "likelihood"]
    keys += [key for key, plain in UNREMARKABLE.items() if identity.get(key) and identity[key] != plain]
    parts = ", ".join(f"{key}={identity[key]}" for key in keys)
    device = str(trainer.strategy.root_device)
    if trainer.world_size > 1:
        device = f"{trainer.world_size} x {device.split(':')[0]}"
    return f"train: {identity['model']} ({parts}) on {identity['data']} | {device}, {trainer.precision} | {output_dir}"
