"""Lightning callbacks of vae_zoo: the configurable ones, and those the model adds itself."""

from vae_zoo.callbacks.best_and_last_checkpoint import BestAndLastCheckpoint
from vae_zoo.callbacks.capacity_increase import CapacityIncrease
from vae_zoo.callbacks.ema import ExponentialMovingAverage
from vae_zoo.callbacks.epoch_means import EpochMeans
from vae_zoo.callbacks.exact_resume import ExactResume
from vae_zoo.callbacks.image_grids import ImageGrids
from vae_zoo.callbacks.kl_warmup import KLWarmup
from vae_zoo.callbacks.latent_maps import LatentMaps
from vae_zoo.callbacks.nonfinite_guard import NonFiniteGuard
from vae_zoo.callbacks.periodic_checkpoint import PeriodicCheckpoint
from vae_zoo.callbacks.preemption import Preemption
from vae_zoo.callbacks.progress_bar import ProgressBar
from vae_zoo.callbacks.temperature_annealing import TemperatureAnnealing

__all__ = [
    "BestAndLastCheckpoint",
    "CapacityIncrease",
    "EpochMeans",
    "ExactResume",
    "ExponentialMovingAverage",
    "ImageGrids",
    "KLWarmup",
    "LatentMaps",
    "NonFiniteGuard",
    "PeriodicCheckpoint",
    "Preemption",
    "ProgressBar",
    "TemperatureAnnealing",
]
