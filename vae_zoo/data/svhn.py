"""SVHN house numbers from torchvision's files (``<data_dir>/SVHN/{train,test}_32x32.mat``), 32x32 RGB.

The last ``val_size`` training images are the validation split (68,257 / 5,000 / 26,032 by default).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
import torchvision

from vae_zoo.data.datamodule import HeldOutValidationDataModule
from vae_zoo.data.download import fetch_or_explain
from vae_zoo.data.files import DataFileError

FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}


def read_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 3, 32, 32)`` uint8 and labels 0-9 (the files store the digit 0 as 10)."""
    try:
        stored = scipy.io.loadmat(str(path))
        images = np.ascontiguousarray(np.asarray(stored["X"], dtype=np.uint8).transpose(3, 2, 0, 1))
        labels = np.asarray(stored["y"], dtype=np.int64).reshape(-1) % 10
    except Exception as error:  # noqa: BLE001 -- scipy raises many kinds for a damaged file; one fix
        raise DataFileError(
            f"{path} is not a readable SVHN file ({type(error).__name__}): delete it to download it again"
        ) from None
    if images.shape[1:] != (3, 32, 32) or len(labels) != len(images):
        raise DataFileError(
            f"{path} is not an SVHN file: {len(labels)} labels for images of shape {images.shape} (SVHN: N x 3 x "
            "32 x 32 with N labels) -- delete it to download it again"
        )
    return images, labels


class SVHNDataModule(HeldOutValidationDataModule):
    """Street-view digits in colour."""

    input_shape = (3, 32, 32)
    classes = 10
    train_images, default_val_size = 73_257, 5_000
    default_binarize = "none"

    @property
    def folder(self) -> Path:
        return self.data_dir / "SVHN"

    def prepare_data(self) -> None:
        for split, name in FILES.items():
            if not (self.folder / name).is_file():
                fetch_or_explain(
                    self.folder,
                    tuple(FILES.values()),
                    lambda split=split: torchvision.datasets.SVHN(
                        str(self.folder), split=split, download=True
                    ),
                    self.download,
                    forms="",
                )

    def load_train_test(self) -> tuple[np.ndarray, np.ndarray]:
        self.prepare_data()
        return read_mat(self.folder / FILES["train"])[0], read_mat(self.folder / FILES["test"])[0]

    def load_train_test_labels(self) -> tuple[np.ndarray, np.ndarray]:
        self.prepare_data()
        return read_mat(self.folder / FILES["train"])[1], read_mat(self.folder / FILES["test"])[1]

    def test_labels(self) -> np.ndarray | None:
        return read_mat(self.folder / FILES["test"])[1]
