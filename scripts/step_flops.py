"""How close a training step runs to this machine's matmul limit, for any configuration.

Counts the floating-point operations of one training step on real training batches (the objective's forward
and backward pass: 2 per multiply-add of every matrix product, torch's ``FlopCounterMode``), times whole steps
(forward, backward, the optimizer's update) in this process on batches drawn beforehand, and compares the rate
with a large square float32 matmul measured in the same run, the machine's achievable matmul rate:

    python scripts/step_flops.py                                   # the default model
    python scripts/step_flops.py --overrides experiment=m2_mnist   # M2: every class of each unlabelled image
"""

from __future__ import annotations

import argparse
import itertools
import platform

import torch
from iw_eval_flops import built_on_the_cpu, flops, matmul_peak, seconds

from vae_zoo.data.tensor_batches import images_and_labels


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=30, help="timed steps (after one warm-up step)")
    parser.add_argument("--batches", type=int, default=8, help="training batches drawn and cycled through")
    parser.add_argument("--peak-size", type=int, default=2048)
    parser.add_argument("--overrides", nargs="*", default=[], help="Hydra overrides (model, data, ...)")
    args = parser.parse_args(argv)

    datamodule, trained = built_on_the_cpu(args.overrides)
    model, objective = trained.model, trained.objective
    optimizer = trained.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    batches = [images_and_labels(b) for b in itertools.islice(datamodule.train_dataloader(), args.batches)]

    def loss_and_gradient(x: torch.Tensor, labels: torch.Tensor | None) -> None:
        with model.given(labels):
            loss, _ = objective(model, x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()

    def step(batch: tuple[torch.Tensor, torch.Tensor | None]) -> None:
        loss_and_gradient(*batch)
        optimizer.step()

    step_flops = flops(lambda: loss_and_gradient(*batches[0]))
    cycle = itertools.cycle(batches)
    step_s = seconds(lambda: step(next(cycle)), args.steps)
    peak = matmul_peak(args.peak_size, 3)

    rate = step_flops / step_s
    rows = len(batches[0][0])
    device = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    print(f"{device}; torch {torch.__version__}; {' '.join(args.overrides) or 'default model'}")
    print(
        f"training step, {rows} images a batch: {step_flops} FLOP, {step_s * 1e3:.1f} ms (median of {args.steps})"
    )
    print(f"  {rate / 1e9:.1f} GFLOP/s; peak float32 matmul ({args.peak_size}^3): {peak / 1e9:.1f} GFLOP/s")
    print(f"  the step runs at {rate / peak:.0%} of the peak")


if __name__ == "__main__":
    main()
