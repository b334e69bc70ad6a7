"""The shared datamodule: splits loaded once, moved to the training device, served as TensorBatches."""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor

from vae_zoo.conditions.label import UNLABELLED
from vae_zoo.data.files import DataFileError
from vae_zoo.data.tensor_batches import TensorBatches
from vae_zoo.errors import ConfigError

BINARIZATIONS = ("dynamic", "none")
PLACEMENTS = ("auto", "device", "host")
DEVICE_MEMORY_SHARE = (
    0.5  # auto: splits go to the accelerator when they take at most this share of its free memory
)
EVAL_BINARIZATION_SEED = 1234  # fixed, so val/test images are the same for every run and seed
EVAL_NOISE_SEED = 4321  # the same for the dequantization noise of val/test batches


def checked_labels(
    labels: dict[str, np.ndarray], images: dict[str, np.ndarray], classes: int
) -> dict[str, np.ndarray]:
    """``labels`` if each split has one label in ``[0, classes)`` per image; else a one-line DataFileError."""
    for name, array in labels.items():
        if len(array) != len(images[name]) or (len(array) and not 0 <= array.min() <= array.max() < classes):
            raise DataFileError(
                f"the {name} split's labels do not fit its images: {len(array)} labels for {len(images[name])} "
                f"images, or a label outside [0, {classes}) -- check the dataset's label files"
            )
    return labels


def withheld(labels: np.ndarray, keep: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``labels`` with all but ``keep`` replaced by ``UNLABELLED``: ``keep / classes`` images of each class,
    chosen by ``seed`` (Kingma et al. 2014's balanced labelled subsets); and the kept images' indices."""
    if keep % classes:
        raise ConfigError(
            f"data.labels={keep} must be a multiple of the {classes} classes (the same number of each)"
        )
    generator = np.random.default_rng(seed)
    per_class = keep // classes
    chosen = []
    for c in range(classes):
        of_class = np.flatnonzero(labels == c)
        if len(of_class) < per_class:
            raise ConfigError(
                f"data.labels={keep} keeps {per_class} labels per class, and class {c} has {len(of_class)} "
                "training images -- choose fewer labels"
            )
        chosen.append(generator.choice(of_class, per_class, replace=False))
    kept = np.sort(np.concatenate(chosen))
    hidden = np.full_like(labels, UNLABELLED)
    hidden[kept] = labels[kept]
    return hidden, kept


def scale(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """uint8 pixels in [0, 255] to floats in [0, 1]."""
    return images.float().div_(255.0)


def dequantize_uniform(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """8-bit levels k to ``(k + u) / 256`` with ``u ~ U(0, 1)`` per pixel: continuous pixels in [0, 1), on
    which a density p bounds the discrete likelihood, ``log P(k) >= E_u log p((k + u) / 256) - D ln 256``."""
    noise = torch.rand(images.shape, generator=generator, device=images.device)
    return (images.float() + noise).div_(256.0)


def binarize_dynamic(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """A fresh Bernoulli draw per pixel with the grey level as probability (Salakhutdinov & Murray):
    ``x = [u < k / 255]`` with ``u ~ U[0, 1)``, so ``P(x = 1) = k / 255`` to within 2^-24 (u's resolution)
    and exactly 0 and 1 at k = 0 and 255. Three times faster than ``torch.bernoulli`` on the CPU."""
    uniform = torch.rand(images.shape, generator=generator, device=images.device)
    return uniform.lt_(scale(images))


def serve_labels(datamodule: pl.LightningDataModule) -> None:
    """Labelled batches from ``datamodule`` for a conditional model; one line where it cannot serve them."""
    if not hasattr(datamodule, "serve_labels"):
        raise ConfigError(
            f"condition=label needs class labels, and data={type(datamodule).__name__} serves none -- use a "
            "labelled dataset or condition=none"
        )
    datamodule.serve_labels()


class TensorDataModule(pl.LightningDataModule):
    """Images as uint8 tensors ``(N, C, H, W)`` on the training device, split into train/val/test.

    ``binarize``: ``dynamic`` redraws binary training images every batch and binarizes val/test once with
    a fixed seed; ``none`` serves the stored pixels scaled to [0, 1]. ``dequantize`` (with ``binarize:
    none``) serves ``(k + u) / 256`` instead, with fresh noise per training batch and fixed noise (seeded
    by ``EVAL_NOISE_SEED`` and the batch) for val/test. ``pixels`` tells the model what the served pixels
    are (``binary``, ``8bit`` grey levels k/255, or ``dequantized``), so that a likelihood that is no
    density of them is refused. Subclasses implement ``load_splits``; statically binarized sets store pixels as
    0/255 and set ``stored_pixels = "binary"``; ``default_binarize`` is what an unset ``binarize`` means
    (``dynamic`` for grey digits, ``none`` for colour photographs and sets that are binary already).
    After ``serve_labels`` (a conditional model's data) batches are ``(images, labels)``, the labels from
    ``load_label_splits``. ``labels`` (an integer) keeps the labels of that many training images, balanced
    over the classes and chosen by ``seed``, and marks the others ``UNLABELLED`` (semi-supervised learning,
    ``objective=semi_supervised``); each training batch then also holds ``labelled_per_batch`` of the labelled
    images.
    """

    input_shape: tuple[int, int, int]
    #: the number of classes of the dataset's labels; None: it has none (a conditional model refuses it)
    classes: int | None = None
    stored_pixels = "8bit"
    default_binarize = "dynamic"

    def __init__(
        self,
        data_dir: str,
        batch_size: int = 128,
        eval_batch_size: int = 500,
        binarize: str | None = None,
        dequantize: bool = False,
        placement: str = "auto",
        download: bool = True,
        seed: int = 0,
        labels: int | None = None,
        labelled_per_batch: int = 16,
    ) -> None:
        super().__init__()
        binarize = binarize or self.default_binarize
        if binarize not in BINARIZATIONS:
            raise ConfigError(f"data.binarize={binarize!r} is not one of {', '.join(BINARIZATIONS)}")
        if batch_size < 1 or eval_batch_size < 1:
            raise ConfigError(f"data.batch_size={batch_size} and data.eval_batch_size must be >= 1")
        self.data_dir = Path(data_dir)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        if dequantize and (binarize != "none" or self.stored_pixels != "8bit"):
            raise ConfigError(
                "data.dequantize=true needs 8-bit pixels: set data.binarize=none, on a grey-level dataset"
            )
        if placement not in PLACEMENTS:
            raise ConfigError(f"data.placement={placement!r} is not one of {', '.join(PLACEMENTS)}")
        if labels is not None and labels < 1:
            raise ConfigError(f"data.labels={labels} must be >= 1, or null: every training label")
        if labelled_per_batch < 1:
            raise ConfigError(f"data.labelled_per_batch={labelled_per_batch} must be >= 1")
        self.labels_kept, self.labelled_per_batch = labels, labelled_per_batch
        self.labelled_train: Tensor | None = None  # the indices of the training images whose labels are kept
        self.true_labels: dict[str, np.ndarray] | None = None  # every label read, where some are withheld
        self.binarize = binarize
        self.dequantize = dequantize
        self.placement = placement
        self.download = download
        self.seed = seed
        self.splits: dict[str, Tensor] | None = None
        self.label_splits: dict[str, Tensor] | None = None
        self.labelled = False
        self._read: dict[str, np.ndarray] | None = None
        self._read_labels: dict[str, np.ndarray] | None = None

    @abstractmethod
    def load_splits(self) -> dict[str, np.ndarray]:
        """uint8 arrays ``(N, C, H, W)`` for ``train``, ``val`` and ``test``."""

    def load_label_splits(self) -> dict[str, np.ndarray]:
        """int64 class labels in ``[0, classes)`` for ``train``, ``val`` and ``test``, one per image of
        ``load_splits`` (datasets with ``classes`` implement it)."""
        raise NotImplementedError

    def serve_labels(self) -> None:
        """Batches from now on are ``(images, labels)``; one line where the dataset has no labels."""
        if self.classes is None:
            raise ConfigError(
                f"condition=label needs class labels, and data={type(self).__name__} has none -- use a labelled "
                "dataset (mnist, fashion_mnist, cifar10, svhn, an image_folder of class subfolders) or condition=none"
            )
        self.labelled = True

    def test_labels(self) -> np.ndarray | None:
        """The test images' class labels, where the dataset has them (for latent-space figures)."""
        return None

    @classmethod
    def served_pixels(cls, binarize: str | None = None, dequantize: bool = False) -> str:
        """What batches of this dataset's pixels are with these settings (``vae_zoo.likelihoods.PIXELS``):
        ``binary`` (0/1), ``8bit`` (levels k/255) or ``dequantized`` ((k + u) / 256)."""
        if (binarize or cls.default_binarize) == "dynamic":
            return "binary"
        return "dequantized" if dequantize else cls.stored_pixels

    @property
    def pixels(self) -> str:
        """What the batches' pixels are (``served_pixels`` of this module's settings)."""
        return self.served_pixels(self.binarize, self.dequantize)

    @property
    def train_transform(self):
        if self.binarize == "dynamic":
            return binarize_dynamic
        return dequantize_uniform if self.dequantize else scale

    @property
    def eval_transform(self):
        return dequantize_uniform if self.dequantize else scale

    def _device(self) -> torch.device:
        return self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")

    def read_files(self) -> None:
        """Read (and so check) the dataset's files now, before training starts: a damaged file stops the
        run here with its one-line error; ``setup`` then uses what was read."""
        if self._read is None and self.splits is None:
            self._read = self.load_splits()
        if self.labelled and self._read_labels is None and self.label_splits is None:
            self._read_labels = self.kept_labels(
                checked_labels(self.load_label_splits(), self._read or self.splits, self.classes)
            )

    def kept_labels(self, labels: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``labels`` with the training labels withheld but ``data.labels`` of them (``withheld``), whose
        indices ``labelled_train`` then holds; all of them where ``data.labels`` is null."""
        if self.labels_kept is None:
            return labels
        self.true_labels = labels
        train, kept = withheld(labels["train"], self.labels_kept, self.classes, self.seed)
        self.labelled_train = torch.from_numpy(kept)
        return {**labels, "train": train}

    def setup(self, stage: str | None = None) -> None:
        if self.splits is None:
            loaded, self._read = self._read if self._read is not None else self.load_splits(), None
            arrays = {name: torch.tensor(array) for name, array in loaded.items()}
            if self.binarize == "dynamic":
                generator = torch.Generator().manual_seed(EVAL_BINARIZATION_SEED)
                for name in ("val", "test"):
                    probs = scale(arrays[name])
                    arrays[name] = (torch.bernoulli(probs, generator=generator) * 255).to(torch.uint8)
            device = self._storage_device(arrays)
            self.splits = {name: images.to(device) for name, images in arrays.items()}
        if self.labelled and self.label_splits is None:
            labels = self._read_labels or self.kept_labels(
                checked_labels(self.load_label_splits(), self.splits, self.classes)
            )
            self.label_splits = {
                name: torch.tensor(array).to(self.splits[name].device) for name, array in labels.items()
            }
            if self.labelled_train is not None:
                self.labelled_train = self.labelled_train.to(self.splits["train"].device)
            self._read_labels = None

    def share(self, read: TensorDataModule) -> None:
        """Serve the splits that ``read``, a set-up module of the same dataset, holds (packed jobs read the
        files once), with this module's own kept labels where ``data.labels`` withholds some (its seed's)."""
        self.splits = read.splits
        if read.true_labels is None:
            self.label_splits = read.label_splits
        else:
            self._read_labels = self.kept_labels(read.true_labels)
            self.setup()

    def _storage_device(self, arrays: dict[str, Tensor]) -> torch.device:
        """The training device when the splits fit there (``placement: auto``: half its free memory), else
        the host, saying so in one line; ``placement: host`` or ``device`` decides without measuring."""
        device = self._device()
        if self.placement == "host":
            return torch.device("cpu")
        if device.type == "cpu" or self.placement == "device":
            return device
        needed = sum(a.numel() * a.element_size() for a in arrays.values())
        free, _ = torch.cuda.mem_get_info(device)
        if needed <= DEVICE_MEMORY_SHARE * free:
            return device
        print(
            f"data: the splits need {needed / 2**30:.1f} GiB, more than half the {free / 2**30:.1f} GiB free on "
            f"{device}: streaming batches from pinned host memory (data.placement=device forces the device)"
        )
        return torch.device("cpu")

    def _batches(self, split: str, batch_size: int, shuffle: bool, transform) -> TensorBatches:
        """Training batches draw their noise from (data.seed, epoch, batch); evaluation batches from
        (EVAL_NOISE_SEED, batch), the same in every epoch and run."""
        if self.splits is None:
            self.setup()
        trainer = self.trainer
        training = split == "train"
        return TensorBatches(
            self.splits[split],
            batch_size,
            transform,
            shuffle=shuffle,
            seed=self.seed if training else EVAL_NOISE_SEED,
            epoch=(lambda: trainer.current_epoch) if trainer is not None and training else (lambda: 0),
            rank=trainer.global_rank if trainer is not None else 0,
            world_size=trainer.world_size if trainer is not None else 1,
            device=self._device(),
            labels=self.label_splits[split] if self.labelled else None,
            labelled=self.labelled_train if training else None,
            labelled_per_batch=self.labelled_per_batch,
        )

    @property
    def training_images(self) -> int:
        """Images in the training split (after ``setup``)."""
        return len(self.splits["train"])

    def train_dataloader(self) -> TensorBatches:
        return self._batches("train", self.batch_size, True, self.train_transform)

    def val_dataloader(self) -> TensorBatches:
        return self._batches("val", self.eval_batch_size, False, self.eval_transform)

    def test_dataloader(self) -> TensorBatches:
        return self._batches("test", self.eval_batch_size, False, self.eval_transform)

    def sample_images(self, split: str, n: int) -> Tensor:
        """The first ``n`` images of a split as the model sees them in evaluation (for image grids)."""
        if self.splits is None:
            self.setup()
        return scale(self.splits[split][:n])

    def sample_labels(self, split: str, n: int) -> Tensor:
        """The class labels of ``sample_images(split, n)`` (after ``serve_labels``)."""
        if self.label_splits is None:
            self.setup()
        return self.label_splits[split][:n]


class HeldOutValidationDataModule(TensorDataModule):
    """A dataset shipped as a training and a test file: the last ``val_size`` training images validate
    (``default_val_size`` when unset). Subclasses implement ``load_train_test``."""

    #: images in the training file, and how many of them validate by default
    train_images: int
    default_val_size: int

    def __init__(self, data_dir: str, val_size: int | None = None, **kwargs) -> None:
        super().__init__(data_dir, **kwargs)
        val_size = self.default_val_size if val_size is None else val_size
        if not 0 < val_size < self.train_images:
            raise ConfigError(f"data.val_size={val_size} must be between 1 and {self.train_images - 1}")
        self.val_size = val_size

    @abstractmethod
    def load_train_test(self) -> tuple[np.ndarray, np.ndarray]:
        """uint8 arrays ``(N, C, H, W)`` of the training and the test file."""

    def load_splits(self) -> dict[str, np.ndarray]:
        return self.split_train_test(*self.load_train_test())

    def load_train_test_labels(self) -> tuple[np.ndarray, np.ndarray]:
        """The class labels of the training and the test file (datasets with ``classes`` implement it)."""
        raise NotImplementedError

    def load_label_splits(self) -> dict[str, np.ndarray]:
        return self.split_train_test(*self.load_train_test_labels())

    def split_train_test(self, train: np.ndarray, test: np.ndarray) -> dict[str, np.ndarray]:
        """The training file's rows less the last ``val_size`` (``train``), those (``val``), and ``test``."""
        return {"train": train[: -self.val_size], "val": train[-self.val_size :], "test": test}
