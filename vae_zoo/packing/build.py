"""A pack's data and module from its jobs' configs, each job's part built as its unpacked run builds it."""

from __future__ import annotations

from collections.abc import Sequence

from omegaconf import DictConfig

from vae_zoo.cli import build_datamodule_and_model, reseed
from vae_zoo.packing.packed_data import PackedDataModule
from vae_zoo.packing.packed_vae import PackedVAE


def build_pack(cfgs: Sequence[DictConfig]) -> tuple[PackedDataModule, PackedVAE]:
    """Each job seeded and built in turn (its initial weights are its unpacked run's), then packed. The pack
    draws its sampling noise from the one random stream the last job's seeding left: a pack of one is its
    unpacked run, bit for bit; in a larger pack job ``n`` sees other (equally distributed) noise than alone."""
    datamodules, runs = [], []
    for cfg in cfgs:
        reseed(cfg)
        datamodule, run = build_datamodule_and_model(cfg)
        datamodules.append(datamodule)
        runs.append(run)
    return PackedDataModule(datamodules), PackedVAE(runs)
