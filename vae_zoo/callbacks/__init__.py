"""Lightning callbacks of vae_zoo."""

from vae_zoo.callbacks.image_grids import ImageGrids

__all__ = ["ImageGrids"]
