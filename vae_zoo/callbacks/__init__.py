"""Lightning callbacks of vae_zoo."""

from vae_zoo.callbacks.image_grids import ImageGrids
from vae_zoo.callbacks.kl_warmup import KLWarmup
from vae_zoo.callbacks.preemption import Preemption
from vae_zoo.callbacks.temperature_annealing import TemperatureAnnealing

__all__ = ["ImageGrids", "KLWarmup", "Preemption", "TemperatureAnnealing"]
