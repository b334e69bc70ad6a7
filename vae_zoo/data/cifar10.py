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
from vae_zoo.errors import DataNotFoundError

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One pickled CIFAR batch: uint8 images ``(N, 3, 32, 32)`` and their labels."""
    try:
        with path.open("rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
        images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        return images, np.asarray(batch[b"labels"], dtype=np.int64)
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, ValueError) as error:
        raise DataNotFoundError(
            f"{path} is not a readable CIFAR-10 batch ({type(error).__name__}): delete it to download it again"
        ) from None


class CIFAR10DataModule(HeldOutValidationDataModule):
    """Ten classes of small colour photographs; labels kept for the test split."""

    input_shape = (3, 32, 32)
    train_images, default_val_size = 50_000, 5_000

    def __init__(self, data_dir: str, **kwargs) -> None:
        kwargs.setdefault("binarize", "none")
        super().__init__(data_dir, **kwargs)

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

    def test_labels(self) -> np.ndarray | None:
        return read_batch(self.folder / TEST_FILE)[1]
