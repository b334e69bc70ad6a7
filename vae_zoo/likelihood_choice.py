"""Which likelihood a run uses when ``likelihood=`` does not say: the one made for the data's pixels.

``conf/train.yaml`` sets ``model.likelihood: ${vae_zoo.likelihood_for_data:${data}}``; a ``likelihood=``
choice (command line, experiment file) replaces that node. The data config's class and settings say what
its batches' pixels are (``served_pixels``), and ``LIKELIHOOD_FOR_PIXELS`` names the likelihood for each kind. The
options that fit some pixels (``likelihood.fitting``) are named in the one-line refusals.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl

from vae_zoo.components import component_class
from vae_zoo.config_groups import options

#: the likelihood option chosen for each kind of pixels when the run names none
LIKELIHOOD_FOR_PIXELS = {
    "binary": "bernoulli",
    "8bit": "discretized_logistic",
    "dequantized": "continuous_bernoulli",
    "table": "table",
}


def data_pixels(data: Mapping[str, Any]) -> str:
    """What the data config's batches hold (``binary``, ``8bit`` or ``dequantized``), from its class's
    ``served_pixels`` and its ``binarize`` and ``dequantize`` settings, without reading any file."""
    cls = component_class(data, pl.LightningDataModule, "data")
    if not hasattr(cls, "served_pixels"):
        raise TypeError(
            f"{cls.__name__} does not say what its pixels are (served_pixels): choose likelihood="
        )
    return cls.served_pixels(data.get("binarize"), bool(data.get("dequantize", False)))


def likelihood_for_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """The config of ``LIKELIHOOD_FOR_PIXELS[pixels]`` for the data config ``data`` (the resolver
    ``${vae_zoo.likelihood_for_data:${data}}``)."""
    return options("likelihood")[LIKELIHOOD_FOR_PIXELS[data_pixels(data)]]
