"""vae_zoo: variational autoencoders on Lightning and Hydra.

``vae_zoo.load(path)`` returns a trained probabilistic model; ``vae_zoo.train(*overrides)`` trains one as
``python train.py`` does, ``vae_zoo.train_packed(*jobs)`` several as a packed sweep (``vae_zoo.api``). They are
imported on first use, so ``import vae_zoo`` stays light.
"""

__all__ = ["load", "train", "train_packed"]


def __getattr__(name: str):
    if name in __all__:
        from vae_zoo import api

        return getattr(api, name)
    raise AttributeError(f"module 'vae_zoo' has no attribute {name!r}")
