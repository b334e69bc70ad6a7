"""A folder of the user's own PNG/JPEG images, decoded once into a uint8 cache.

Images are found recursively. Splits: the ``train/``, ``val/`` and ``test/`` subfolders when there is a
``train/`` (a missing ``val/`` or ``test/`` takes its fraction of ``train/``, seeded), else seeded
fractions of all images. Each image is converted to grey (``channels: 1``) or RGB (``channels: 3``),
its shorter side resized to ``image_size`` and centre-cropped to a square (no resizing when
``image_size`` is unset and all images have one size), after an optional centre crop to ``crop``
pixels (CelebA's usual 148). The decoded arrays are written to
``<cache_dir>/image_folder-<key>.npz``, keyed by the folder, every file's name, size and mtime, and
the settings, so a second run loads them in seconds and a changed folder is decoded again. Where every
image lies in a class subfolder (``<class>/*.png``, under ``train/`` and the other split folders where there
is a ``train/``), the images are labelled by their folder: classes in sorted name order, torchvision's
``ImageFolder`` convention; the labels are cached beside the images.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from vae_zoo.data.datamodule import TensorDataModule
from vae_zoo.errors import ConfigError, DataNotFoundError

EXTENSIONS = {".png", ".jpg", ".jpeg"}
BAD_IMAGE_POLICIES = ("skip", "error")
CACHE_VERSION = 2  # 2: class labels beside the images
LABELS = "_labels"  # a cache's labels of split s: the array "s_labels"
GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
#: what Pillow raises on a damaged or unsupported file: its plugins' parsers raise more than OSError (a TIFF
#: header of impossible dimensions a ValueError, a broken PNG chunk a SyntaxError, a short field struct.error)
UNREADABLE = (
    OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError, SyntaxError, EOFError,
    struct.error,
)  # fmt: skip


def find_images(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())


def decode(path: Path, channels: int, image_size: int | None, crop: int | None = None) -> np.ndarray:
    """One image as uint8 ``(C, H, W)``: converted, centre-cropped to ``crop`` x ``crop`` (if set), shorter
    side resized to ``image_size``, centre-cropped to a square."""
    with Image.open(path) as image:
        image = image.convert("L" if channels == 1 else "RGB")
        if crop is not None:
            side = min(crop, *image.size)
            left, top = (image.width - side) // 2, (image.height - side) // 2
            image = image.crop((left, top, left + side, top + side))
        if image_size is not None:
            scale = image_size / min(image.size)
            if scale != 1:
                size = (
                    max(image_size, round(image.width * scale)),
                    max(image_size, round(image.height * scale)),
                )
                image = image.resize(size, Image.Resampling.BICUBIC)
            left, top = (image.width - image_size) // 2, (image.height - image_size) // 2
            image = image.crop((left, top, left + image_size, top + image_size))
        array = np.asarray(image, dtype=np.uint8)
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def read_cache(path: Path) -> dict[str, np.ndarray] | None:
    """The uint8 arrays of a cache file, read with pickles off (``allow_pickle=False``: an object array in it
    is refused, never unpickled); None, saying so in one line, when the file is not such an archive, so
    the images are decoded again and the cache rewritten."""
    try:
        stored = np.load(path, allow_pickle=False)
        if not isinstance(stored, np.lib.npyio.NpzFile):
            raise TypeError("not an .npz archive")
        with stored:
            arrays = {name: stored[name] for name in stored.files}
        images = {name: array for name, array in arrays.items() if not name.endswith(LABELS)}
        labels = {name: array for name, array in arrays.items() if name.endswith(LABELS)}
        if not images or any(array.dtype != np.uint8 or array.ndim != 4 for array in images.values()):
            raise ValueError("not uint8 image arrays")
        if any(
            array.dtype != np.int64 or array.shape != (len(images.get(name.removesuffix(LABELS), ())),)
            for name, array in labels.items()
        ):
            raise ValueError("labels that are not one int64 per image")
        return arrays
    except (ValueError, TypeError, OSError, EOFError, zipfile.BadZipFile) as error:
        reason = (str(error) or type(error).__name__).splitlines()[0]
        print(f"image_folder: ignoring the cache {path} ({reason}): decoding the images again")
        return None


class ImageFolderDataModule(TensorDataModule):
    """The user's images. ``on_bad_image``: ``skip`` (count them and name the first few) or ``error``
    (one line naming the file); ``workers`` threads decode (default: all cores)."""

    default_binarize = "none"

    def __init__(
        self,
        path: str,
        image_size: int | None = None,
        channels: int | None = None,
        crop: int | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        cache_dir: str = "outputs/cache",
        on_bad_image: str = "skip",
        workers: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(path, **kwargs)
        if channels not in (None, 1, 3):
            raise ConfigError(f"data.channels={channels} must be 1 (grey) or 3 (RGB)")
        if image_size is not None and image_size < 1 or crop is not None and crop < 1:
            raise ConfigError(f"data.image_size={image_size} and data.crop={crop} must be >= 1 (or null)")
        if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
            raise ConfigError(
                f"data.val_fraction={val_fraction} and data.test_fraction={test_fraction} must be in [0, 1) "
                "and sum to less than 1"
            )
        if on_bad_image not in BAD_IMAGE_POLICIES:
            raise ConfigError(
                f"data.on_bad_image={on_bad_image!r} is not one of {', '.join(BAD_IMAGE_POLICIES)}"
            )
        self.image_size, self.channels, self.crop = image_size, channels, crop
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.cache_dir = Path(cache_dir)
        self.on_bad_image = on_bad_image
        self.workers = workers or os.cpu_count() or 1
        self._arrays: dict[str, np.ndarray] | None = None
        self._listing: dict[str, list[Path]] | None = None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.load_splits()["train"].shape[1:])

    @property
    def classes(self) -> int | None:
        """The number of class subfolders, where every image lies in one; else None (no labels)."""
        names = self._class_names(self._files_by_split())
        return len(names) if names else None

    def load_splits(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            self._arrays = self._load()
        return {name: array for name, array in self._arrays.items() if not name.endswith(LABELS)}

    def load_label_splits(self) -> dict[str, np.ndarray]:
        self.load_splits()
        return {
            name.removesuffix(LABELS): array for name, array in self._arrays.items() if name.endswith(LABELS)
        }

    def _class_names(self, files: dict[str, list[Path]]) -> list[str] | None:
        """The training images' class folders in sorted order, where every image of every split lies in a
        folder of one of them; None where an image lies outside a class folder. An image of another split in
        a folder the training images do not have is one line (its label would be outside the classes)."""
        roots = {split: self.data_dir / split if split != "all" else self.data_dir for split in files}
        parts = {split: [p.relative_to(roots[split]).parts for p in paths] for split, paths in files.items()}
        if any(len(each) < 2 for split in parts.values() for each in split):
            return None
        names = sorted({each[0] for each in parts.get("train", parts.get("all", []))})
        for split, split_parts in parts.items():
            strange = sorted({each[0] for each in split_parts} - set(names))
            if strange:
                raise ConfigError(
                    f"{roots[split]}/{strange[0]} is not a class of the training images (their folders: "
                    f"{', '.join(names)}): its label would be outside [0, {len(names)}) -- move it, or add the "
                    "class to train/"
                )
        return names

    def _labels(
        self, files: dict[str, list[Path]], decoded: list[np.ndarray | None]
    ) -> dict[str, np.ndarray]:
        """``{"<split>_labels": int64 labels}`` of each split's readable images, where the folder is labelled."""
        names = self._class_names(files)
        if not names:
            return {}
        index = {name: k for k, name in enumerate(names)}
        readable = iter(image is not None for image in decoded)
        labels = {}
        for split, paths in files.items():
            root = self.data_dir / split if split != "all" else self.data_dir
            kept = [index[p.relative_to(root).parts[0]] for p in paths if next(readable)]
            labels[split + LABELS] = np.asarray(kept, dtype=np.int64)
        return labels

    def _files_by_split(self) -> dict[str, list[Path]]:
        """The image files of each split, listed once (the folder is walked once however often the classes
        and the cache key are asked for)."""
        if self._listing is None:
            root = self.data_dir
            if not root.is_dir():
                raise DataNotFoundError(f"data.path={root} is not a folder: point data.path at your images")
            if (root / "train").is_dir():
                self._listing = {split: find_images(root / split) for split in ("train", "val", "test")}
            else:
                self._listing = {"all": find_images(root)}
        return self._listing

    def _cache_path(self, files: dict[str, list[Path]]) -> Path:
        listing = {
            split: [
                (str(p.relative_to(self.data_dir)), p.stat().st_size, p.stat().st_mtime_ns) for p in paths
            ]
            for split, paths in files.items()
        }
        settings = (
            CACHE_VERSION,
            str(self.data_dir.resolve()),
            self.image_size,
            self.channels,
            self.on_bad_image,
        )
        key = hashlib.sha256(json.dumps([settings, listing]).encode()).hexdigest()[:16]
        return self.cache_dir / f"image_folder-{key}.npz"

    def _load(self) -> dict[str, np.ndarray]:
        files = self._files_by_split()
        if not any(files.values()):
            raise DataNotFoundError(
                f"no PNG or JPEG images under data.path={self.data_dir}: point data.path at a folder of images"
            )
        cache = self._cache_path(files)
        cached = read_cache(cache) if cache.is_file() else None
        if cached is not None:
            return self._split(cached)
        decoded = self._decode_all([p for paths in files.values() for p in paths])
        offsets = np.cumsum([0] + [len(paths) for paths in files.values()])
        arrays: dict[str, np.ndarray] = {}
        for (split, paths), start in zip(files.items(), offsets[:-1]):
            good = [image for image in decoded[start : start + len(paths)] if image is not None]
            arrays[split] = np.stack(good) if good else np.zeros((0, *self._shape(decoded)), np.uint8)
        arrays.update(self._labels(files, decoded))
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(".partial.npz")
        np.savez(partial, **arrays)
        os.replace(partial, cache)
        return self._split(arrays)

    def _settings_from_headers(self, paths: list[Path]) -> tuple[int, int | None]:
        """``channels`` and ``image_size`` where unset: RGB if any image is in colour; the one size all
        images share (or a one-line error asking for ``data.image_size``)."""
        channels, sizes, modes = self.channels, {}, set()
        for path in paths:
            try:
                with Image.open(path) as image:
                    sizes.setdefault(image.size, path)
                    modes.add(image.mode)
            except UNREADABLE:
                continue  # reported when decoding
        if channels is None:
            channels = 1 if modes <= GREY_MODES else 3
        image_size = self.image_size if self.image_size is not None else self.crop
        if image_size is None and len(sizes) > 1:
            examples = ", ".join(f"{path.name} {w}x{h}" for (w, h), path in list(sizes.items())[:2])
            raise ConfigError(
                f"images under {self.data_dir} differ in size ({examples}): set data.image_size=N"
            )
        if image_size is None and sizes:
            width, height = next(iter(sizes))
            if width != height:
                image_size = min(width, height)
        return channels, image_size

    def _decode_all(self, paths: list[Path]) -> list[np.ndarray | None]:
        channels, image_size = self._settings_from_headers(paths)

        def attempt(path: Path) -> np.ndarray | None:
            try:
                return decode(path, channels, image_size, self.crop)
            except UNREADABLE as error:
                if self.on_bad_image == "error":
                    raise ConfigError(
                        f"cannot read image {path}: {error} (data.on_bad_image=skip skips such files)"
                    ) from None
                return None

        with ThreadPoolExecutor(self.workers) as pool:
            decoded = list(
                tqdm(pool.map(attempt, paths), total=len(paths), desc=f"decoding {self.data_dir}", unit="img")
            )
        bad = [path for path, image in zip(paths, decoded) if image is None]
        if len(bad) == len(paths):
            raise DataNotFoundError(
                f"none of the {len(paths)} image files under {self.data_dir} could be read"
            )
        if bad:
            names = ", ".join(str(p.relative_to(self.data_dir)) for p in bad[:3])
            print(
                f"image_folder: skipped {len(bad)} unreadable file(s): {names}{', ...' if len(bad) > 3 else ''}"
            )
        return decoded

    @staticmethod
    def _shape(decoded: list[np.ndarray | None]) -> tuple[int, ...]:
        return next(image.shape for image in decoded if image is not None)

    def _split(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Fill the splits that have no folder of their own with seeded fractions of the rest (the labels,
        ``<split>_labels``, with their images)."""
        source = "all" if "all" in arrays else "train"
        order = np.random.default_rng(self.seed).permutation(len(arrays[source]))
        n_val = round(self.val_fraction * len(order)) if not len(arrays.get("val", ())) else 0
        n_test = round(self.test_fraction * len(order)) if not len(arrays.get("test", ())) else 0
        taken = {
            "val": order[:n_val],
            "test": order[n_val : n_val + n_test],
            "train": np.sort(order[n_val + n_test :]),
        }
        if not len(taken["train"]):
            raise ConfigError(
                f"no training images left under {self.data_dir}: lower data.val_fraction/test_fraction"
            )
        splits = {}
        for suffix in ("", LABELS) if source + LABELS in arrays else ("",):
            pool = arrays[source + suffix]
            for split, rows in taken.items():
                own = split != "train" and len(rows) == 0 and split + suffix in arrays
                splits[split + suffix] = arrays[split + suffix] if own else pool[rows]
        return splits
