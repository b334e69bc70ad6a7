"""CelebA faces from torchvision's layout (``<data_dir>/celeba/img_align_celeba/*.jpg`` and
``list_eval_partition.txt``), its official train/val/test partition, centre-cropped to 148 x 148 and
resized to 64 x 64 (the usual VAE preprocessing), decoded once into the image-folder cache."""

from __future__ import annotations

from pathlib import Path

import torchvision

from vae_zoo.data.download import fetch_or_explain
from vae_zoo.data.image_folder import ImageFolderDataModule
from vae_zoo.errors import DataNotFoundError

PARTITION_FILE = "list_eval_partition.txt"
IMAGES = "img_align_celeba"
SPLITS = ("train", "val", "test")  # partition 0, 1, 2


class CelebADataModule(ImageFolderDataModule):
    """202,599 aligned celebrity faces, RGB; 64 x 64 is ~2.4 GB of uint8, which ``data.placement=auto``
    streams from host memory where the accelerator has too little free memory."""

    def __init__(
        self, data_dir: str, image_size: int = 64, crop: int = 148, download: bool = True, **kwargs
    ) -> None:
        super().__init__(
            str(Path(data_dir) / "celeba"),
            image_size=image_size,
            crop=crop,
            channels=3,
            download=download,
            **kwargs,
        )
        self.torchvision_root = Path(data_dir)

    def _class_names(self, files: dict[str, list[Path]]) -> None:
        """None: one folder of faces, no class labels (the attributes are not classes)."""
        return

    def _files_by_split(self) -> dict[str, list[Path]]:
        partition = self.data_dir / PARTITION_FILE
        if not partition.is_file() or not (self.data_dir / IMAGES).is_dir():
            fetch_or_explain(
                self.data_dir,
                (f"{IMAGES}/", PARTITION_FILE),
                lambda: torchvision.datasets.CelebA(str(self.torchvision_root), split="all", download=True),
                self.download,
                forms="",
            )
        files: dict[str, list[Path]] = {split: [] for split in SPLITS}
        for number, line in enumerate(partition.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                name, index = line.split()
                files[SPLITS[int(index)]].append(self.data_dir / IMAGES / name)
            except (ValueError, IndexError):
                raise DataNotFoundError(
                    f"{partition} line {number} is not '<image> <0|1|2>': the file is damaged, download it again"
                ) from None
        missing = [path for paths in files.values() for path in paths if not path.is_file()]
        if missing:
            raise DataNotFoundError(
                f"{len(missing)} images listed in {partition} are missing from {self.data_dir / IMAGES} "
                f"(e.g. {missing[0].name}): download the dataset again"
            )
        return files
