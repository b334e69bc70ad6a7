"""Tabular data: rows of numbers from a ``.csv``, ``.npy`` or ``.npz`` file, served as ``(B, 1, 1, F)`` floats.

A CSV is parsed with Python's ``csv`` module, a first row with a cell that is not a number being the header
(``header: true|false`` decides without looking); ``.npy``/``.npz`` files are read with pickles off. Every cell
must be a finite number: a bad cell, rows of different widths, or an empty file is one line naming the file
(and the row and column), read before anything is written. The rows are split by ``val_path``/``test_path``
files or by seeded fractions. Columns are ``binary`` (only 0 and 1 in the training rows, or named in
``binary_columns``) or ``real``; the training rows' mean and standard deviation of each real column travel to
the likelihood (``likelihood=table``), which standardizes inside the model, so batches, bounds and samples are
all in the data's own units.
"""

from __future__ import annotations

import csv
import math
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor

from vae_zoo.data.files import DataFileError
from vae_zoo.data.tensor_batches import TensorBatches
from vae_zoo.errors import ConfigError, DataNotFoundError

SUFFIXES = (".csv", ".npy", ".npz")


class Columns(NamedTuple):
    """What the likelihood needs of a table's columns: which are 0/1, and each real column's training mean
    and standard deviation (0 and 1 for binary columns; 1 for a constant column)."""

    names: list[str]
    binary: Tensor  # bool (F,)
    means: Tensor  # (F,)
    scales: Tensor  # (F,)


def is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def read_csv(path: Path, header: bool | None) -> tuple[list[str] | None, np.ndarray]:
    """The header (or None) and the rows of a CSV file as float64; one line for anything that is not a table
    of finite numbers."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = [row for row in csv.reader(handle) if row and any(cell.strip() for cell in row)]
    if not rows:
        raise DataFileError(f"{path} holds no rows -- data.path must name a table with at least one row")
    if header is None:
        header = not all(is_number(cell) for cell in rows[0])
    names, body = (rows[0], rows[1:]) if header else (None, rows)
    if not body:
        raise DataFileError(f"{path} holds a header and no rows -- data.path must name a table with rows")
    width = len(names or body[0])
    values = np.empty((len(body), width))
    for r, row in enumerate(body):
        line = r + 1 + bool(names)  # the file's own line number
        if len(row) != width:
            raise DataFileError(
                f"{path} line {line} has {len(row)} cells, the first row {width} -- every row needs {width}"
            )
        for c, cell in enumerate(row):
            try:
                values[r, c] = float(cell)
            except ValueError:
                values[r, c] = math.nan
            if not math.isfinite(values[r, c]):
                column = f"column {c + 1}" + (f" ({names[c]})" if names else "")
                raise DataFileError(
                    f"{path} line {line}, {column}: {cell.strip()!r} is not a finite number -- fill or drop that row"
                )
    return names, values


def read_array(path: Path) -> np.ndarray:
    """The one 2-d numeric array of a ``.npy`` file or ``.npz`` archive (pickles off), as float64."""
    try:
        stored = np.load(path, allow_pickle=False)
        if isinstance(stored, np.lib.npyio.NpzFile):
            with stored:
                if len(stored.files) != 1:
                    raise ValueError(f"{len(stored.files)} arrays, not one")
                stored = stored[stored.files[0]]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        reason = (str(error) or type(error).__name__).splitlines()[0]
        raise DataFileError(
            f"{path} is not a readable table ({reason}) -- save one 2-d numeric array"
        ) from None
    if stored.ndim != 2 or not np.issubdtype(stored.dtype, np.number) or not stored.size:
        raise DataFileError(
            f"{path} holds a {stored.dtype} array of shape {stored.shape}: a table is one non-empty 2-d numeric array"
        )
    values = stored.astype(np.float64)
    bad = np.argwhere(~np.isfinite(values))
    if len(bad):
        row, column = bad[0]
        raise DataFileError(
            f"{path} row {row + 1}, column {column + 1}: {values[row, column]} is not a finite number"
        )
    return values


def read_table(path: Path, header: bool | None = None) -> tuple[list[str] | None, np.ndarray]:
    """The header (CSV only, or None) and the rows of a table file."""
    if not path.is_file():
        raise DataNotFoundError(f"data.path={path} is not a file: point it at a .csv, .npy or .npz table")
    if path.suffix.lower() not in SUFFIXES:
        raise ConfigError(f"data.path={path} is not a .csv, .npy or .npz file")
    return read_csv(path, header) if path.suffix.lower() == ".csv" else (None, read_array(path))


class TableDataModule(pl.LightningDataModule):
    """Rows of a table as ``(B, 1, 1, F)`` float32 batches (``pixels = "table"``), split ``train/val/test``.

    ``columns``: which columns to keep (header names, or 0-based indices), all by default. ``binary_columns``:
    ``auto`` (those whose training values are all 0 or 1), or a list of names or indices (every other column
    real). The table is read, checked and split when the module is built, so bad input stops a run before it
    writes anything."""

    classes = None

    def __init__(
        self,
        path: str,
        columns: Sequence[str | int] | None = None,
        binary_columns: str | Sequence[str | int] = "auto",
        header: bool | None = None,
        val_path: str | None = None,
        test_path: str | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        batch_size: int = 128,
        eval_batch_size: int = 500,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if batch_size < 1 or eval_batch_size < 1:
            raise ConfigError(f"data.batch_size={batch_size} and data.eval_batch_size must be >= 1")
        if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
            raise ConfigError(
                f"data.val_fraction={val_fraction} and data.test_fraction={test_fraction} must be in [0, 1) and "
                "sum to less than 1"
            )
        self.batch_size, self.eval_batch_size, self.seed = batch_size, eval_batch_size, seed
        names, rows = read_table(Path(path), header)
        keep = self._selected(columns, names, rows.shape[1])
        self.names = [names[c] if names else str(c) for c in keep]
        splits = {"train": rows[:, keep]}
        for split, other in (("val", val_path), ("test", test_path)):
            if other is not None:
                _, other_rows = read_table(Path(other), header)
                if other_rows.shape[1] != rows.shape[1]:
                    raise DataFileError(
                        f"{other} has {other_rows.shape[1]} columns and {path} {rows.shape[1]} -- the split files "
                        "must share their columns"
                    )
                splits[split] = other_rows[:, keep]
        self.splits = self._split(splits, val_fraction, test_fraction)
        self.binary = self._binary(binary_columns, names)

    @staticmethod
    def _selected(columns: Sequence[str | int] | None, names: list[str] | None, width: int) -> list[int]:
        if columns is None:
            return list(range(width))
        keep = []
        for column in columns:
            if isinstance(column, int) and 0 <= column < width:
                keep.append(column)
            elif names and column in names:
                keep.append(names.index(column))
            else:
                known = f"the header's names ({', '.join(names)})" if names else f"indices 0..{width - 1}"
                raise ConfigError(f"data.columns: {column!r} is not a column of the table; use {known}")
        return keep

    def _split(
        self, given: dict[str, np.ndarray], val_fraction: float, test_fraction: float
    ) -> dict[str, Tensor]:
        """``given``'s splits, the missing ones drawn as seeded fractions of the training rows."""
        pool = given["train"]
        order = np.random.default_rng(self.seed).permutation(len(pool))
        n_val = 0 if "val" in given else round(val_fraction * len(pool))
        n_test = 0 if "test" in given else round(test_fraction * len(pool))
        splits = {
            "val": given.get("val", pool[order[:n_val]]),
            "test": given.get("test", pool[order[n_val : n_val + n_test]]),
            "train": pool[np.sort(order[n_val + n_test :])],
        }
        for split, rows in splits.items():
            if not len(rows):
                raise ConfigError(
                    f"the table leaves no {split} rows: give data.{split}_path or a larger data.{split}_fraction"
                    if split != "train"
                    else "the table leaves no training rows: lower data.val_fraction and data.test_fraction"
                )
        return {
            split: torch.tensor(rows, dtype=torch.float32)[:, None, None] for split, rows in splits.items()
        }

    def _binary(self, binary_columns: str | Sequence[str | int], names: list[str] | None) -> Tensor:
        train = self.splits["train"].flatten(1)
        if binary_columns == "auto":
            return ((train == 0) | (train == 1)).all(0)
        chosen = {self.names.index(str(c)) if str(c) in self.names else c for c in binary_columns}
        if not all(isinstance(c, int) and 0 <= c < len(self.names) for c in chosen):
            raise ConfigError(
                f"data.binary_columns={list(binary_columns)} names columns that are not kept: {self.names}"
            )
        binary = torch.zeros(len(self.names), dtype=torch.bool)
        binary[list(chosen)] = True
        odd = [self.names[c] for c in chosen if not ((train[:, c] == 0) | (train[:, c] == 1)).all()]
        if odd:
            raise ConfigError(f"data.binary_columns: column {odd[0]} holds values other than 0 and 1")
        return binary

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (1, 1, len(self.names))

    @classmethod
    def served_pixels(cls, binarize: str | None = None, dequantize: bool = False) -> str:
        return "table"

    @property
    def pixels(self) -> str:
        return "table"

    def columns(self) -> Columns:
        """The kinds of the columns, and the training rows' mean and standard deviation of the real ones."""
        train = self.splits["train"].flatten(1).double()
        means = torch.where(self.binary, 0.0, train.mean(0))
        scales = torch.where(self.binary, 1.0, train.std(0, correction=0))
        scales = torch.where(scales > 0, scales, 1.0)
        return Columns(self.names, self.binary, means.float(), scales.float())

    def _device(self) -> torch.device:
        return self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")

    def _batches(self, split: str, batch_size: int) -> TensorBatches:
        training, trainer = split == "train", self.trainer
        return TensorBatches(
            self.splits[split].to(self._device()),
            batch_size,
            lambda rows, generator: rows,
            shuffle=training,
            seed=self.seed,
            epoch=(lambda: trainer.current_epoch) if trainer is not None and training else (lambda: 0),
            rank=trainer.global_rank if trainer is not None else 0,
            world_size=trainer.world_size if trainer is not None else 1,
        )

    @property
    def training_images(self) -> int:
        """Rows in the training split."""
        return len(self.splits["train"])

    def train_dataloader(self) -> TensorBatches:
        return self._batches("train", self.batch_size)

    def val_dataloader(self) -> TensorBatches:
        return self._batches("val", self.eval_batch_size)

    def test_dataloader(self) -> TensorBatches:
        return self._batches("test", self.eval_batch_size)

    def sample_images(self, split: str, n: int) -> Tensor:
        """The first ``n`` rows of a split, ``(n, 1, 1, F)``."""
        return self.splits[split][:n]

    def test_labels(self) -> None:
        """A table has no class labels (for latent-space figures)."""
        return
