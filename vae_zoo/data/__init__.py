"""Datamodules serving device-resident image batches."""

from vae_zoo.data.binarized_mnist import BinarizedMNISTDataModule
from vae_zoo.data.datamodule import TensorDataModule
from vae_zoo.data.mnist import FashionMNISTDataModule, MNISTDataModule

__all__ = ["BinarizedMNISTDataModule", "FashionMNISTDataModule", "MNISTDataModule", "TensorDataModule"]
