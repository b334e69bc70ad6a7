"""A pack's optimizer step: every model's optimizer by one call (``vae_zoo.packing.joint_step``) against one call
per model, in one process, alternated.

For packs of the default model and of the DisARM model (``scripts/packed_speed.py``'s cases) of 8 and 64 seeds:
one forward and backward pass gives every model its gradients, then the pack's ``PackedOptimizer.step`` is timed
both ways, ``rounds`` times each in turn (each time the median of ``repeats`` steps); the ratio is the median of
the rounds' ratios (below 1: one call is faster).

    python scripts/joint_step_speed.py [--models 8 64] [--cases default disarm] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile

import torch
from packed_speed import CASES, median_seconds, step_configs

from vae_zoo.data.tensor_batches import images_and_labels
from vae_zoo.packed_batch import per_image_copies
from vae_zoo.packing.job import PackJob
from vae_zoo.packing.train_pack import build_pack


def step_milliseconds(optimizer, joint, repeats: int, device: torch.device) -> float:
    """Median milliseconds of ``optimizer.step()``, by one call (``joint``) or one call per model (None)."""
    optimizer.joint = joint
    return median_seconds(optimizer.step, repeats, device) * 1e3


def measure(case: str, models: int, device: torch.device, rounds: int, repeats: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as out:
        cfgs = step_configs(case, models, (), out)
        datamodule, packed = build_pack([PackJob(cfg) for cfg in cfgs])
    datamodule.setup("fit")
    packed.to(device)
    x, labels = images_and_labels(next(iter(datamodule.train_dataloader())))
    x = x.to(device)
    optimizer = packed.configure_optimizers()
    with per_image_copies(packed.model, len(x) // models), packed.model.given(labels):
        loss, _ = packed.objective(packed.model, x)
    loss.sum().backward()
    optimizer.split_gradients()
    joint = optimizer.joint
    if joint is None:
        raise SystemExit(f"{case}: its optimizer class does not step as one call")
    step_milliseconds(optimizer, joint, 3, device)  # warm-up: the optimizers' states exist
    together, apart = [], []
    for _ in range(rounds):
        together.append(step_milliseconds(optimizer, joint, repeats, device))
        apart.append(step_milliseconds(optimizer, None, repeats, device))
    return {
        "one_call_ms": statistics.median(together),
        "per_model_ms": statistics.median(apart),
        "ratio": statistics.median(t / a for t, a in zip(together, apart)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", type=int, nargs="*", default=[8, 64])
    parser.add_argument("--cases", nargs="*", default=["default", "disarm"], choices=list(CASES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads")
    print("| case | models | one call, ms | one call per model, ms | one call / per model |")
    print("|---|---|---|---|---|")
    for case in args.cases:
        for models in args.models:
            r = measure(case, models, device, args.rounds, args.repeats)
            print(
                f"| {case} | {models} | {r['one_call_ms']:.2f} | {r['per_model_ms']:.2f} | {r['ratio']:.3f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
