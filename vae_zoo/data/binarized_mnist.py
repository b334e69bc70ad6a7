"""Static binarized MNIST of Larochelle & Murray (2011): 50k/10k/10k fixed binary images.

Read from ``<data_dir>/BinarizedMNIST/binarized_mnist_{train,valid,test}.amat[.gz]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torchvision.datasets.utils import download_url

from vae_zoo.data.datamodule import TensorDataModule
from vae_zoo.data.download import fetch_or_explain
from vae_zoo.data.files import find_file, read_amat
from vae_zoo.errors import ConfigError

SPLIT_FILES = {
    "train": "binarized_mnist_train.amat",
    "val": "binarized_mnist_valid.amat",
    "test": "binarized_mnist_test.amat",
}
URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"


class BinarizedMNISTDataModule(TensorDataModule):
    """Fixed binary digits; there is nothing to binarize, so ``binarize`` must stay ``none``."""

    input_shape = (1, 28, 28)
    stored_pixels = "binary"
    default_binarize = "none"

    def __init__(self, data_dir: str, **kwargs) -> None:
        if kwargs.get("binarize") not in (None, "none"):
            raise ConfigError("data=binarized_mnist is already binary: drop the data.binarize override")
        super().__init__(data_dir, **kwargs)

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "BinarizedMNIST"

    def prepare_data(self) -> None:
        missing = [name for name in SPLIT_FILES.values() if find_file(self.raw_dir, name) is None]
        if missing:
            fetch_or_explain(
                self.raw_dir,
                tuple(SPLIT_FILES.values()),
                lambda: [download_url(URL + name, str(self.raw_dir)) for name in missing],
                self.download,
            )

    def load_splits(self) -> dict[str, np.ndarray]:
        self.prepare_data()
        return {
            split: (read_amat(find_file(self.raw_dir, name)) * 255).reshape(-1, *self.input_shape)
            for split, name in SPLIT_FILES.items()
        }
