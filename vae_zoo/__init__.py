"""vae_zoo: variational autoencoders on Lightning and Hydra."""
