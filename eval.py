"""Evaluate a checkpoint: ``python eval.py ckpt_path=outputs/.../checkpoints/last.ckpt``."""

from vae_zoo.commands import eval_main

if __name__ == "__main__":
    eval_main()
