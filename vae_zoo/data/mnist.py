"""MNIST and Fashion-MNIST from torchvision's layout (``<data_dir>/<Name>/raw/*-idx3-ubyte[.gz]``).

The last ``val_size`` training images are the validation split (MNIST: 50k/10k/10k).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torchvision

from vae_zoo.data.datamodule import HeldOutValidationDataModule
from vae_zoo.data.download import fetch_or_explain
from vae_zoo.data.files import find_file, read_idx

IMAGE_FILES = ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte")
LABEL_FILES = ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte")


class MNISTDataModule(HeldOutValidationDataModule):
    """Handwritten digits, 28x28 grey levels."""

    input_shape = (1, 28, 28)
    classes = 10
    train_images, default_val_size = 60_000, 10_000
    dataset_class = torchvision.datasets.MNIST

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / self.dataset_class.__name__ / "raw"

    def _image_paths(self) -> list[Path | None]:
        return [find_file(self.raw_dir, name) for name in IMAGE_FILES]

    def prepare_data(self) -> None:
        if None in self._image_paths():
            fetch_or_explain(
                self.raw_dir,
                IMAGE_FILES,
                lambda: self.dataset_class(str(self.data_dir), train=True, download=True),
                self.download,
            )

    def load_train_test(self) -> tuple[np.ndarray, np.ndarray]:
        self.prepare_data()
        train_path, test_path = self._image_paths()
        return read_idx(train_path)[:, None], read_idx(test_path)[:, None]

    def load_train_test_labels(self) -> tuple[np.ndarray, np.ndarray]:
        paths = [find_file(self.raw_dir, name) for name in LABEL_FILES]
        if None in paths:
            fetch_or_explain(
                self.raw_dir,
                LABEL_FILES,
                lambda: self.dataset_class(str(self.data_dir), train=True, download=True),
                self.download,
            )
            paths = [find_file(self.raw_dir, name) for name in LABEL_FILES]
        return tuple(read_idx(path).astype(np.int64) for path in paths)

    def test_labels(self) -> np.ndarray | None:
        path = find_file(self.raw_dir, LABEL_FILES[1])
        return read_idx(path) if path is not None else None


class FashionMNISTDataModule(MNISTDataModule):
    """Zalando's clothing images, 28x28 grey levels, in MNIST's format."""

    dataset_class = torchvision.datasets.FashionMNIST
