"""Pictures of a trained model: ``python sample.py ckpt_path=outputs/.../checkpoints/last.ckpt``."""

from vae_zoo.commands import sample_main

if __name__ == "__main__":
    sample_main()
