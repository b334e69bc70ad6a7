"""CIFAR-10 from torchvision's layout (``<data_dir>/cifar-10-batches-py/{data_batch_1..5,test_batch}``).

32x32 RGB, 8-bit. The last ``val_size`` training images are the validation split (45k/5k/10k by default).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torchvision

from vae_zoo.data.datamodule import HeldOutValidationDataModule
from vae_zoo.data.download import fetch_or_explain
from vae_zoo.data.files import DataFileError
from vae_zoo.data.plain_pickle import RefusedPickle, load_plain_pickle

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One pickled CIFAR batch: uint8 images ``(N, 3, 32, 32)`` and their labels. Read as plain data
    (``load_plain_pickle``): a file that names anything but dicts, lists, bytes, numbers and numpy arrays is
    refused before anything it names runs, and so is one whose ``data`` and ``labels`` are not a batch's."""
    fix = "-- delete it and download CIFAR-10 again (data.download=true)"
    try:
        batch = load_plain_pickle(path)
    except RefusedPickle as refusal:
        raise DataFileError(
            f"{path} is not a CIFAR-10 batch: {refusal}, which no CIFAR-10 batch holds (data files are "
            f"parsed, never run; nothing it names was called) {fix}"
        ) from None
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise DataFileError(
            f"{path} is not a readable CIFAR-10 batch ({type(error).__name__}) {fix}"
        ) from None
    data = batch.get(b"data") if isinstance(batch, dict) else None
    labels = batch.get(b"labels") if isinstance(batch, dict) else None
    if not (
        isinstance(data, np.ndarray)
        and data.dtype == np.uint8
        and data.ndim == 2
        and data.shape[1] == 3 * 32 * 32
        and isinstance(labels, list)
        and len(labels) == len(data)
        and all(isinstance(label, int) for label in labels)
    ):
        raise DataFileError(
            f"{path} is not a CIFAR-10 batch (no uint8 'data' rows of 3072 bytes with one int label each) {fix}"
        )
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


class CIFAR10DataModule(HeldOutValidationDataModule):
    """Ten classes of small colour photographs."""

    input_shape = (3, 32, 32)
    classes = 10
    train_images, default_val_size = 50_000, 5_000
    default_binarize = "none"

    @property
    def folder(self) -> Path:
        return self.data_dir / FOLDER

    def prepare_data(self) -> None:
        if not all((self.folder / name).is_file() for name in (*TRAIN_FILES, TEST_FILE)):
            fetch_or_explain(
                self.folder,
                (*TRAIN_FILES, TEST_FILE),
                lambda: torchvision.datasets.CIFAR10(str(self.data_dir), train=True, download=True),
                self.download,
                forms="",
            )

    def load_train_test(self) -> tuple[np.ndarray, np.ndarray]:
        self.prepare_data()
        train = np.concatenate([read_batch(self.folder / name)[0] for name in TRAIN_FILES])
        return train, read_batch(self.folder / TEST_FILE)[0]

    def load_train_test_labels(self) -> tuple[np.ndarray, np.ndarray]:
        self.prepare_data()
        train = np.concatenate([read_batch(self.folder / name)[1] for name in TRAIN_FILES])
        return train, read_batch(self.folder / TEST_FILE)[1]

    def test_labels(self) -> np.ndarray | None:
        return read_batch(self.folder / TEST_FILE)[1]
