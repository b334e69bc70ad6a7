"""Lightning callbacks of vae_zoo."""

from vae_zoo.callbacks.image_grids import ImageGrids
from vae_zoo.callbacks.temperature_annealing import TemperatureAnnealing

__all__ = ["ImageGrids", "TemperatureAnnealing"]
