"""Every GPU figure the README lacks, in one command; without a CUDA device it says so and exits 0.

On the GPU: `scripts/benchmark.py`'s interleaved measurement (ours against the user's loop and against
the same-optimizer loop) for the three models in 32-true, bf16-mixed and 16-mixed, each without and with
CUDA graphs (`model.compile=reduce-overhead`); the cost of the per-step host read of the non-finite guard
(`model.nonfinite_check_every=1` against the deferred default); before them the GPU tests (mixed
precision, CUDA streaming, CUDA graphs, packs on CUDA), the packed training step of 16 and 64 seeds of
the default model against one model's, in 32-true and bf16-mixed, the pack's optimizer step by one call
against one call per model, and a pack's convolutions grouped against one call per model. One markdown file,
written after every row so that a cut-off run keeps what it measured.

    python scripts/gpu_report.py [--epochs 2] [--models gaussian_vae] [--out outputs/gpu_report.md]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from benchmark import MODELS, measure, table
from joint_step_speed import measure as measure_joint_step
from packed_conv_forms import main as packed_conv_forms
from packed_speed import step_seconds, unpacked_step_seconds

PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")
GPU_TESTS = [
    "tests/test_mixed_precision.py",
    "tests/test_data.py",
    "tests/test_packing.py",
    "tests/test_joint_step.py",
    "-k",
    "gpu or cuda or streamed",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=MODELS)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per path (after one warm-up)")
    parser.add_argument("--out", type=Path, default=Path("outputs/gpu_report.md"))
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_report: no CUDA device here, nothing to measure -- run it on a machine with a GPU")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *GPU_TESTS],
        capture_output=True,
        text=True,
        check=False,
    )
    summary = tests.stdout.strip().splitlines()[-1] if tests.stdout.strip() else tests.stderr[-500:]
    sections = [f"GPU tests (`pytest {' '.join(GPU_TESTS)}`): {summary}\n"]
    print(sections[0])

    def write(rows: list[dict], setup: str) -> None:
        args.out.write_text("\n".join([*sections, table(rows, setup)]))

    def finished(title: str, rows: list[str]) -> None:
        sections.append(title + "\n\n" + "\n".join(rows) + "\n")
        print(sections[-1])

    packed_rows = [
        "| seeds | precision | one model unpacked, ms/step | pack, ms/step | pack / (seeds x one) |",
        "|---|---|---|---|---|",
    ]
    for precision in ("32-true", "bf16-mixed"):  # issue 31: the default model's seeds packed
        gpu = ("trainer=gpu", f"trainer.precision={precision}")
        one = unpacked_step_seconds("default", gpu)
        for seeds in (16, 64):
            pack, _, _ = step_seconds("default", seeds, gpu)
            packed_rows.append(
                f"| {seeds} | {precision} | {one * 1e3:.2f} | {pack * 1e3:.2f} | {pack / (seeds * one):.3f} |"
            )
            args.out.write_text("\n".join([*sections, *packed_rows]))
    finished("Packed training steps (`scripts/packed_speed.py`'s in-process step):", packed_rows)

    joint_rows = [
        "| models | one call, ms | one call per model, ms | one call / per model |",
        "|---|---|---|---|",
    ]
    for models in (16, 64):  # the pack's optimizers stepped by one call against one call per model
        r = measure_joint_step("default", models, torch.device("cuda"), rounds=5, repeats=20)
        joint_rows.append(
            f"| {models} | {r['one_call_ms']:.2f} | {r['per_model_ms']:.2f} | {r['ratio']:.3f} |"
        )
        args.out.write_text("\n".join([*sections, *joint_rows]))
    finished(
        "A pack's optimizer step, default model (`scripts/joint_step_speed.py --device cuda`):", joint_rows
    )

    conv_rows = packed_conv_forms(["--device", "cuda"])  # the grouped form a pack takes on CUDA, per model
    finished(
        f"A pack's convolutions (`scripts/packed_conv_forms.py --device cuda`), {conv_rows[0]}", conv_rows[2:]
    )

    runs = [(m, p, False) for p in PRECISIONS for m in args.models]  # compiled last: they take longest
    runs += [(m, "32-true", "guard read every step") for m in args.models]
    runs += [(m, p, "reduce-overhead") for p in PRECISIONS for m in args.models]
    rows: list[dict] = []
    setup = f"trainer=gpu, {args.epochs} timed epochs per path, batch 128"
    with tempfile.TemporaryDirectory() as tmp:
        for model_name, precision, variant in runs:
            overrides = ["trainer=gpu", f"trainer.precision={precision}"]
            compile = variant if variant == "reduce-overhead" else False
            if variant == "guard read every step":
                overrides.append("model.nonfinite_check_every=1")
            row = measure(model_name, args.epochs, compile, overrides, Path(tmp))
            row["model"] += f", {precision}" + (", guard read every step" if "guard" in str(variant) else "")
            rows.append(row)
            write(rows, setup)
    sections.append(table(rows, setup))
    args.out.write_text("\n".join(sections))
    print("\n".join(sections))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
