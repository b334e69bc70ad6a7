"""Train a VAE: ``python train.py model=gumbel_vae``. See ``conf/train.yaml``."""

from vae_zoo.commands import train_main

if __name__ == "__main__":
    train_main()
