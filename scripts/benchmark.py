"""Training throughput of vae_zoo against a bare PyTorch loop of the same model, in one process.

Our path is the real one: `conf/train.yaml` composed by Hydra (default callbacks, progress bar and
TensorBoard logger), fitted by Lightning. The bare loop is hand-written PyTorch: the same encoder,
decoder and parameter head, the same device-resident data, permutation and dynamic binarization,
the same batch size and Adam, with the negative ELBO written out by hand. An epoch is timed from its
first batch to the end of its last training batch (validation is not part of either). Epochs after a
warm-up epoch are timed; the ratio is median(ours) / median(bare), the bare loop timed before and after.

    python scripts/benchmark.py                       # gaussian_vae on MNIST, batch 128
    python scripts/benchmark.py --epochs 3 --overrides data.batch_size=256
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from vae_zoo.cli import build_datamodule_and_model, build_trainer
from vae_zoo.compose import compose_config


class EpochTimer(pl.Callback):
    """Seconds from the start of each training epoch to the end of its last training batch."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx == trainer.num_training_batches - 1:
            self.seconds.append(time.perf_counter() - self._start)


def time_ours(cfg, epochs: int) -> list[float]:
    pl.seed_everything(cfg.seed, verbose=False)
    datamodule, model = build_datamodule_and_model(cfg)
    trainer = build_trainer(cfg)
    timer = EpochTimer()
    trainer.callbacks.append(timer)
    trainer.fit(model, datamodule=datamodule)
    return timer.seconds[1:]


def time_bare(cfg, epochs: int) -> list[float]:
    """The same model and data as `time_ours`, trained by a hand-written loop."""
    pl.seed_everything(cfg.seed, verbose=False)
    datamodule, model = build_datamodule_and_model(cfg)
    datamodule.setup()
    device = torch.device(
        "cuda"
        if cfg.trainer.accelerator in ("gpu", "cuda")
        or (cfg.trainer.accelerator == "auto" and torch.cuda.is_available())
        else "cpu"
    )
    images = datamodule.splits["train"].to(device)
    encoder, head, decoder = model.encoder.to(device), model.latent.head.to(device), model.decoder.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.model.optimizer.lr)
    batch_size = cfg.data.batch_size
    seconds = []
    for epoch in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(epoch)).to(device)
        for idx in order.split(batch_size):
            x = torch.bernoulli(images[idx].float() / 255)
            loc, raw_scale = head(encoder(x)).chunk(2, dim=-1)
            scale = F.softplus(raw_scale) + 1e-5
            z = loc + scale * torch.randn_like(loc)
            logits = decoder(z)
            recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
            kl = 0.5 * (loc.pow(2) + scale.pow(2) - 1 - 2 * scale.log()).sum(1)
            loss = (recon + kl).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return seconds[1:]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per path (after one warm-up)")
    parser.add_argument("--overrides", nargs="*", default=[], help="Hydra overrides for both paths")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [
            f"trainer.max_epochs={args.epochs + 1}",
            "trainer.limit_val_batches=2",
            "eval.iw_samples=1",
            *args.overrides,
        ]
        cfg = compose_config(overrides, Path(tmp))
        bare = time_bare(cfg, args.epochs + 1)
        ours = time_ours(cfg, args.epochs + 1)
        bare += time_bare(cfg, args.epochs + 1)
    ratio = statistics.median(ours) / statistics.median(bare)
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads, overrides: {' '.join(overrides)}")
    print("| path | epoch seconds (median) | all timed epochs |")
    print("|---|---|---|")
    print(f"| vae_zoo | {statistics.median(ours):.2f} | {', '.join(f'{s:.2f}' for s in ours)} |")
    print(f"| bare PyTorch | {statistics.median(bare):.2f} | {', '.join(f'{s:.2f}' for s in bare)} |")
    print(f"ratio vae_zoo / bare = {ratio:.3f}")


if __name__ == "__main__":
    sys.exit(main())
