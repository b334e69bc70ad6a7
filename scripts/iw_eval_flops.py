"""How close the importance-weighted evaluation runs to this machine's matmul limit.

The bound ``test/nll_iw`` decodes k posterior samples per test image, so its work is k decoder passes
per image, almost all of it the decoder's matrix products. This script counts the floating-point
operations of one ``importance_weighted_nll`` call over ``--images`` test images with torch's
``FlopCounterMode`` (2 per multiply-add of every matmul, the encoder's included), times the call, and
compares the rate with two limits measured in the same process:

    decoder      the decoder's forward pass alone at the evaluation's shapes (chunk x images rows):
                 what the bound would reach if sampling, the likelihood and the log-sum-exp were free
    peak         a large square float32 matmul (--peak-size), the machine's achievable matmul rate

    python scripts/iw_eval_flops.py                         # default model, k = 1000, 500 images
    python scripts/iw_eval_flops.py --k 100 --overrides model=gamma_vae
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from vae_zoo.cli import build_datamodule_and_model
from vae_zoo.compose import compose_config


def seconds(fn, repeats: int) -> float:
    """The median wall time of ``fn()`` over ``repeats`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def flops(fn) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def built_on_the_cpu(overrides: list[str]):
    """The data module (its splits loaded) and the LightningModule that ``python train.py <overrides>`` builds,
    on the CPU, torch seeded with the run's seed."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_config(["trainer.accelerator=cpu", *overrides], Path(tmp))
        torch.manual_seed(cfg.seed)
        datamodule, trained = build_datamodule_and_model(cfg)
        datamodule.setup()
    return datamodule, trained


def matmul_peak(size: int, repeats: int) -> float:
    """FLOP/s of a ``size``-cubed float32 matmul (the median of ``repeats``): the machine's achievable rate."""
    a = torch.randn(size, size)
    return 2 * size**3 / seconds(lambda: a @ a, repeats)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--k", type=int, default=1000, help="importance samples per image")
    parser.add_argument("--images", type=int, default=500, help="test images in the timed call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peak-size", type=int, default=2048)
    parser.add_argument(
        "--overrides", nargs="*", default=[], help="Hydra overrides (model, eval.iw_chunk, ...)"
    )
    args = parser.parse_args(argv)

    datamodule, trained = built_on_the_cpu(args.overrides)
    model = trained.model
    model.eval()
    x = datamodule.eval_transform(datamodule.splits["test"][: args.images], torch.Generator().manual_seed(0))

    with torch.no_grad():
        bound_flops = flops(lambda: model.importance_weighted_nll(x, args.k))
        bound_s = seconds(lambda: model.importance_weighted_nll(x, args.k), args.repeats)

        chunk = min(model.iw_chunk_size(x), args.k)
        z = model.posterior(x).sample((chunk,))
        decode = lambda: model.likelihood_params(z)
        decoder_flops = flops(decode) * args.k / chunk
        decoder_s = seconds(decode, args.repeats) * args.k / chunk
        peak = matmul_peak(args.peak_size, args.repeats)

    rate = bound_flops / bound_s
    device = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    print(f"{device}; torch {torch.__version__}; {' '.join(args.overrides) or 'default model'}")
    print(
        f"IW bound, k={args.k}, {args.images} images, {chunk} samples per chunk: "
        f"{bound_flops / 1e9:.1f} GFLOP in {bound_s:.2f} s"
    )
    print(f"  {args.images / bound_s:.1f} images/s, {rate / 1e9:.1f} GFLOP/s")
    print(
        f"  decoder: {decoder_flops / (args.k * args.images):.0f} FLOP per sample, "
        f"{decoder_flops / bound_flops:.0%} of the bound's FLOPs"
    )
    print(
        f"  decoder forward alone at these shapes: {decoder_flops / decoder_s / 1e9:.1f} GFLOP/s "
        f"({decoder_s / bound_s:.0%} of the bound's time)"
    )
    print(f"  peak float32 matmul ({args.peak_size}^3): {peak / 1e9:.1f} GFLOP/s")
    print(f"  the bound runs at {rate / peak:.0%} of the peak")


if __name__ == "__main__":
    main()
