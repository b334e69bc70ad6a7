"""A pack's convolutions in their two forms, layer by layer: one call per model against one grouped convolution.

`vae_zoo/packing/packed_conv.py` computes a pack's convolution either way and takes the per-model form on the
CPU and the grouped one on CUDA. This times both, for every convolution of a case of
`scripts/packed_speed.py` (its layers and input shapes taken from the model as built, by a forward hook on a
training batch), stacked for a pack of eight: the forward pass and the backward pass to the input and the
weights, the two forms alternated round by round, each the median of its repetitions. The ratio is the
per-model form's time over the grouped one's (below 1: the per-model form is the faster).

    python scripts/packed_conv_forms.py                       # conv and vq_grid_pixelcnn, on the CPU
    python scripts/packed_conv_forms.py --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

import torch
from packed_speed import SEEDS, median_seconds, step_configs
from torch import nn

from vae_zoo.cli import build_datamodule_and_model, reseed
from vae_zoo.data.tensor_batches import images_and_labels
from vae_zoo.packing.packed_conv import PackedConv

CASES = ("conv", "vq_grid_pixelcnn")


def convolutions(case: str) -> list[tuple[str, nn.Module, torch.Size]]:
    """Each convolution of ``case``'s seed-0 model, with the shape of its input in one training step."""
    with tempfile.TemporaryDirectory() as out:
        (cfg,) = step_configs(case, 1, (), out)
        reseed(cfg)
        datamodule, module = build_datamodule_and_model(cfg)
    datamodule.setup("fit")
    x, labels = images_and_labels(next(iter(datamodule.train_dataloader())))
    found: dict[str, tuple[nn.Module, torch.Size]] = {}

    def record(name: str, layer: nn.Module, inputs: tuple) -> None:
        found.setdefault(name, (layer, inputs[0].shape))

    hooks = [
        layer.register_forward_hook(lambda layer, inputs, _, name=name: record(name, layer, inputs))
        for name, layer in module.model.named_modules()
        if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d)
    ]
    with module.model.given(labels):
        module.objective(module.model, x)
    for hook in hooks:
        hook.remove()
    return [(name, layer, shape) for name, (layer, shape) in found.items()]


def seconds(form, x: torch.Tensor, repeats: int) -> float:
    """Median seconds of ``form(x)``'s forward and backward pass, after two warm-up passes."""
    passes = lambda: form(x).sum().backward()
    median_seconds(passes, 2, x.device)
    return median_seconds(passes, repeats, x.device)


def compare(layer: nn.Module, shape: torch.Size, device: str, rounds: int, repeats: int) -> tuple[float, ...]:
    """Median over rounds of the per-model and grouped forms' times, and of their ratio, for ``SEEDS`` models."""
    packed = PackedConv.stack([layer] * SEEDS).to(device)
    x = torch.randn(SEEDS * shape[0], *shape[1:], device=device, requires_grad=True)
    per_model, grouped = [], []
    for _ in range(rounds):
        per_model.append(seconds(packed.per_model, x, repeats))
        grouped.append(seconds(packed.grouped, x, repeats))
    ratios = [a / b for a, b in zip(per_model, grouped)]
    return statistics.median(per_model), statistics.median(grouped), statistics.median(ratios)


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=CASES)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    lines = [
        f"{SEEDS} models packed, forward and backward, on {args.device} (torch {torch.__version__}):",
        "",
        "| case | layer | input of one model | per model | grouped | per model / grouped |",
        "|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for case in args.cases:
        for name, layer, shape in convolutions(case):
            per_model, grouped, ratio = compare(layer, shape, args.device, args.rounds, args.repeats)
            lines.append(
                f"| {case} | `{name}` ({type(layer).__name__}, kernel {layer.kernel_size}) | {tuple(shape)} | "
                f"{per_model * 1e3:.2f} ms | {grouped * 1e3:.2f} ms | **{ratio:.2f}** |"
            )
            print(lines[-1], flush=True)
    return lines


if __name__ == "__main__":
    main()
