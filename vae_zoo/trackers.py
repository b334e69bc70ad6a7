"""The experiment trackers (Lightning's loggers) as config options: building them with a one-line error for
a missing extra, images in each tracker's own form, and TensorBoard's HPARAMS row of a finished run."""

from __future__ import annotations

from typing import Any

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger, MLFlowLogger, TensorBoardLogger, WandbLogger
from pytorch_lightning.utilities import rank_zero_only
from torch import Tensor, from_numpy

from vae_zoo.errors import ConfigError, cause_of_type
from vae_zoo.run_identity import descriptive_overrides, run_identity

FINAL = "final/"  # the HPARAMS columns: the evaluated checkpoint's val/test metrics, under their own tags


def build_loggers(cfg: DictConfig) -> list[Logger]:
    """One logger per entry of ``cfg.logger`` (``logger=[tensorboard,mlflow]`` picks several); a tracker
    whose package is not installed stops with the ``pip install`` that adds it."""
    loggers = []
    for name, node in (cfg.get("logger") or {}).items():
        if not node or "_target_" not in node:
            continue
        try:
            loggers.append(instantiate(node))
        except Exception as error:
            if cause_of_type(error, ModuleNotFoundError) is None:
                raise
            raise ConfigError(
                f'logger={name} needs its package, which is not installed: pip install "vae_zoo[{name}]" '
                f'(in a clone: pip install -e ".[{name}]")'
            ) from None
    return loggers


def log_image(logger: Logger, tag: str, image: Tensor, step: int) -> None:
    """``image`` (C, H, W in [0, 1]) to a tracker that takes images: TensorBoard's image tab, an MLflow
    artifact ``<tag>/step_<step>.png``, a W&B image panel; other loggers (CSV) take none."""
    if isinstance(logger, TensorBoardLogger):
        logger.experiment.add_image(tag, image, global_step=step)
        return
    pixels = (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).squeeze(-1).numpy()
    if isinstance(logger, MLFlowLogger):
        logger.experiment.log_image(logger.run_id, pixels, artifact_file=f"{tag}/step_{step:07d}.png")
    elif isinstance(logger, WandbLogger):
        logger.log_image(key=tag, images=[pixels], step=step)


def figure_pixels(figure) -> Tensor:
    """A matplotlib figure drawn to a (3, H, W) image in [0, 1], for ``log_image``."""
    figure.canvas.draw()
    rgb = np.asarray(figure.canvas.buffer_rgba())[..., :3]
    return from_numpy(rgb.copy()).permute(2, 0, 1).float() / 255


@rank_zero_only  # the other ranks' loggers hold dummy experiments without a file writer
def log_hparams_row(loggers: list[Logger], cfg: DictConfig, metrics: dict[str, float], step: int) -> None:
    """TensorBoard's HPARAMS tab: this run as one row of its components, seed and command-line overrides,
    with its final ``metrics`` as columns (logged again, at ``step``, under ``final/...``: the tab shows a tag's
    last value, and the last point of the per-epoch ``val/elbo`` curve need not be the best checkpoint's).
    An override names a group option (``optimizer=adamw``) or a value, typed as the config holds it."""
    writers = [lg for lg in loggers if isinstance(lg, TensorBoardLogger)]
    if not writers:
        return
    from torch.utils.tensorboard.summary import hparams

    columns = {key: value if _is_scalar(value) else str(value) for key, value in run_identity(cfg).items()}
    for key, value in descriptive_overrides().items():
        configured = OmegaConf.select(cfg, key, default=None)
        columns[key] = configured if _is_scalar(configured) else value
    finals = {FINAL + name: value for name, value in metrics.items()}
    for logger in writers:
        logger.log_metrics(finals, step=step)
        writer = logger.experiment._get_file_writer()
        for summary in hparams(columns, finals):
            writer.add_summary(summary)
        writer.flush()


def _is_scalar(value: Any) -> bool:
    return isinstance(value, bool | int | float | str)
