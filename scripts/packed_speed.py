"""Packed training against the same jobs run one after another, and against Hydra's joblib launcher.

Whole ``train.py -m`` processes (start-up, data, training, validation every epoch, the final test of every job)
of the same eight seeds, in three ways, alternated round by round so that the machine's drifts hit all alike:

    sequential   python train.py -m seed=0,...,7 ...                      Hydra's basic launcher: the jobs in turn
    packed       python train.py -m hydra/launcher=packed seed=0,...,7 ...
    joblib       python train.py -m hydra/launcher=joblib hydra.launcher.n_jobs=J seed=0,...,7 ...
                 with OMP_NUM_THREADS = cores / J in every job (left unset, J jobs of one thread per core each
                 oversubscribe the cores); the conventional way to run small jobs side by side

Each ratio is the median over rounds of that way's time over the sequential time of the same round. The jobs
keep their TensorBoard loggers and checkpoints; the callbacks a pack does not run (image grids, latent maps,
the gradient-variance probe) are left out of every way alike. Cases:

    default   model=gaussian_vae (the default model), 3 epochs
    disarm    experiment=disarm_mnist (200 Bernoulli latents with a learned prior, DisARM, batch 50), 2000 steps
    m2        experiment=m2_mnist (semi-supervised M2, 100 labels: every image computed for each of 10 classes),
              300 steps, validation and test on 2 batches of 500, the IW bounds with k = 10
    conv      the default model with conv nets (encoder=conv decoder=conv: packed convolutions, one call per
              model on the CPU and one grouped convolution on CUDA), 3 epochs
    vq_grid_pixelcnn  experiment=vq_grid_mnist with the moving-average codebook and the PixelCNN prior (conv
              nets and a PixelCNN, all packed convolutions), 300 steps

Then, in this process, one training step of the packed module (eight models) against eight steps of one model
unpacked (as a job of the sequential sweep trains it), the two alternated three times; where the packed step's
time goes, and its GFLOP/s (FLOPs counted by torch's FlopCounterMode) against the machine's float32 matmul
peak (a 2048^3 product) measured in the same run; and the peak resident memory of processes training packs of
1, 8 and 32 default models.

    python scripts/packed_speed.py --rounds 2 --no-memory --out docs/measurements/packed_speed.md \\
        --json docs/measurements/packed_speed.json
    python scripts/packed_speed.py --cases --out docs/measurements/packed_memory.md \\
        --json docs/measurements/packed_memory.json
    python scripts/packed_speed.py --cases conv vq_grid_pixelcnn --no-sweeps --no-memory    # the steps alone
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.flop_counter import FlopCounterMode

from vae_zoo.cli import build_datamodule_and_model, build_trainer, reseed
from vae_zoo.compose import compose_config
from vae_zoo.data.tensor_batches import images_and_labels
from vae_zoo.packed_batch import per_image_copies
from vae_zoo.packing.train_pack import PackJob, build_pack

ROOT = Path(__file__).resolve().parents[1]
SEEDS = 8
LEFT_OUT = ("~callbacks.image_grids", "~callbacks.latent_maps")
#: each case's model, and how long its sweeps run
CASES = {
    "default": (("model=gaussian_vae",), ("trainer.max_epochs=3",)),
    "disarm": (("experiment=disarm_mnist",), ("+trainer.max_steps=2000", "~callbacks.gradient_variance")),
    "m2": (
        ("experiment=m2_mnist",),
        ("+trainer.max_steps=300", "trainer.limit_val_batches=2", "trainer.limit_test_batches=2")
        + ("eval.iw_samples=10",),
    ),
    "conv": (("model=gaussian_vae", "encoder=conv", "decoder=conv"), ("trainer.max_epochs=3",)),
    "vq_grid_pixelcnn": (
        ("experiment=vq_grid_mnist", "model.latent.codebook_update=ema", "model.latent.prior=pixelcnn"),
        ("+trainer.max_steps=300", "eval.iw_samples=1"),
    ),
}
WAYS = ("sequential", "packed", "joblib")


def run_sweep(case: str, way: str, jobs: int) -> float:
    """Seconds of one ``train.py -m`` over the eight seeds; every job must have written its metrics.json."""
    cores = os.cpu_count() or 1
    env = dict(os.environ)
    launcher: tuple[str, ...] = ()
    if way == "packed":
        launcher = ("hydra/launcher=packed", f"hydra.launcher.max_models={SEEDS}")
    elif way == "joblib":
        launcher = ("hydra/launcher=joblib", f"hydra.launcher.n_jobs={jobs}")
        env["OMP_NUM_THREADS"] = str(max(1, cores // jobs))
    with tempfile.TemporaryDirectory() as sweep:
        command = [
            sys.executable,
            str(ROOT / "train.py"),
            "-m",
            *launcher,
            *CASES[case][0],
            *CASES[case][1],
            *LEFT_OUT,
            f"seed={','.join(map(str, range(SEEDS)))}",
            f"hydra.sweep.dir={sweep}",
        ]
        start = time.perf_counter()
        result = subprocess.run(command, check=False, env=env, capture_output=True, text=True, cwd=ROOT)
        seconds = time.perf_counter() - start
        written = len(list(Path(sweep).glob("*/metrics.json")))
        if result.returncode != 0 or written != SEEDS:
            raise SystemExit(
                f"{case} {way}: exit {result.returncode}, {written} metrics\n{result.stderr[-3000:]}"
            )
    return seconds


def matmul_peak(size: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of a ``size``^3 float32 product, the best of ``repeats``."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_seconds(fn, repeats: int, device: torch.device) -> float:
    """Median seconds of ``repeats`` calls of ``fn``, each waited for on a CUDA device."""
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def step_configs(case: str, models: int, overrides: tuple[str, ...], out: str) -> list:
    """The configs of seeds ``0 .. models-1`` of ``case`` for timing steps: no callbacks, loggers or validation."""
    data_dir = os.environ.get("VAE_ZOO_DATA_DIR", str(ROOT / "data"))
    fixed = [f"paths.data_dir={data_dir}", *CASES[case][0], "callbacks=none", "logger=[]", *overrides]
    fixed += ["+trainer.max_steps=1000000", "trainer.limit_val_batches=0", "+trainer.num_sanity_val_steps=0"]
    return [compose_config([*fixed, f"seed={seed}"], Path(out)) for seed in range(models)]


def timed_fit(cfg, module: pl.LightningModule, datamodule, steps: int) -> StepClock:
    """``steps`` training steps of ``module`` by the Trainer ``cfg`` builds, each timed (``StepClock``)."""
    trainer = build_trainer(cfg, logging=False)
    clock = StepClock(steps)
    trainer.callbacks.append(clock)
    trainer.fit(module, datamodule=datamodule)
    return clock


def step_seconds(
    case: str, models: int, overrides: tuple[str, ...] = (), steps: int = 30
) -> tuple[float, ...]:
    """Median seconds of one training step (Lightning's, the optimizer's included) of a pack of ``models``
    seeds of ``case``, in this process; with the packed module and a batch of its for a closer look."""
    with tempfile.TemporaryDirectory() as out:
        cfgs = step_configs(case, models, overrides, out)
        datamodule, packed = build_pack([PackJob(cfg) for cfg in cfgs])
        clock = timed_fit(cfgs[0], packed, datamodule, steps)
    return statistics.median(clock.seconds), packed, clock.batch


def unpacked_step_seconds(case: str, overrides: tuple[str, ...] = (), steps: int = 30) -> float:
    """Median seconds of one training step of seed 0 of ``case`` unpacked, as a job of a sequential sweep
    trains it."""
    with tempfile.TemporaryDirectory() as out:
        (cfg,) = step_configs(case, 1, overrides, out)
        reseed(cfg)
        datamodule, module = build_datamodule_and_model(cfg)
        clock = timed_fit(cfg, module, datamodule, steps)
    return statistics.median(clock.seconds)


def step_profile(case: str, rounds: int = 3) -> dict[str, float]:
    """One model's training step unpacked (a sequential job's) against a pack of eight's, the two alternated
    ``rounds`` times (each a median of 30 steps; the ratio the median of the rounds'), where the packed step's
    time goes, and its GFLOP/s."""
    ones, eights, ratios = [], [], []
    for _ in range(rounds):
        ones.append(unpacked_step_seconds(case))
        eight, packed, batch = step_seconds(case, SEEDS)
        eights.append(eight)
        ratios.append(eight / (SEEDS * ones[-1]))
    return {
        "step_1": statistics.median(ones),
        f"step_{SEEDS}": statistics.median(eights),
        "packed_over_sequential_steps": statistics.median(ratios),
        **_where_the_time_goes(packed, batch),
    }


class StepClock(pl.Callback):
    """Seconds from each training batch's start to its end (after the optimizer step), after ten warm-up steps;
    stops the fit after ``steps`` timed steps and keeps the last batch."""

    def __init__(self, steps: int) -> None:
        self.steps, self.seconds, self.batch = steps, [], None

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if images_and_labels(batch)[0].is_cuda:
            torch.cuda.synchronize()
        if batch_idx >= 10:
            self.seconds.append(time.perf_counter() - self.start)
        self.batch = batch
        trainer.should_stop = len(self.seconds) >= self.steps


def _where_the_time_goes(packed, batch, repeats: int = 20) -> dict[str, float]:
    """Forward (the objective), backward, and the eight optimizers' steps of the packed module, median
    seconds each; the step's FLOPs and GFLOP/s."""
    x, labels = images_and_labels(batch)
    optimizer = packed.configure_optimizers()
    parts: dict[str, list[float]] = {"forward": [], "backward": [], "optimizers": []}
    for _ in range(repeats):
        optimizer.zero_grad()
        start = time.perf_counter()
        with per_image_copies(packed.model, len(x) // packed.models), packed.model.given(labels):
            loss, _ = packed.objective(packed.model, x)
        middle = time.perf_counter()
        loss.sum().backward()
        after = time.perf_counter()
        optimizer.split_gradients()
        optimizer.step()
        end = time.perf_counter()
        parts["forward"].append(middle - start)
        parts["backward"].append(after - middle)
        parts["optimizers"].append(end - after)
    counter = FlopCounterMode(display=False)
    with counter, per_image_copies(packed.model, len(x) // packed.models), packed.model.given(labels):
        loss, _ = packed.objective(packed.model, x)
        loss.sum().backward()
    flops = counter.get_total_flops()
    seconds = {name: statistics.median(values) for name, values in parts.items()}
    compute = seconds["forward"] + seconds["backward"]
    return {
        **{f"packed_{k}_s": v for k, v in seconds.items()},
        "packed_gflop": flops / 1e9,
        "packed_gflops_per_s": flops / compute / 1e9,
    }


def peak_memory(models: int) -> float:
    """Peak resident memory (MiB) of a fresh process that trains a pack of ``models`` default models for 30
    steps: the data once, each model's weights, gradients, optimizer state and activations."""
    code = (
        "import resource, sys; sys.path.insert(0, 'scripts'); import packed_speed as s; "
        f"s.step_seconds('default', {models}, steps=20); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT
    )
    return int(result.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--cases",
        nargs="*",
        default=["default", "disarm", "m2"],
        choices=list(CASES),
        help="none: memory only",
    )
    parser.add_argument(
        "--sweeps", action=argparse.BooleanOptionalAction, default=True, help="no: the in-process steps alone"
    )
    parser.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--joblib-jobs", type=int, default=2, help="parallel jobs of the joblib launcher")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    results: dict[str, dict] = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
    }
    results["machine"]["matmul_peak_gflops"] = matmul_peak()
    lines = [
        (
            f"Machine: {results['machine']['cores']} cores, torch {torch.__version__}; float32 matmul peak "
            f"{results['machine']['matmul_peak_gflops']:.0f} GFLOP/s (2048^3, this run)."
        ),
    ]
    if args.cases and args.sweeps:
        lines += [
            "",
            "| case | sequential s | packed s | joblib s | packed / sequential | joblib / sequential |",
            "|---|---|---|---|---|---|",
        ]
    for case in args.cases:
        if not args.sweeps:
            results[case] = step_profile(case)
            continue
        times: dict[str, list[float]] = {way: [] for way in WAYS}
        for round_ in range(args.rounds):
            order = WAYS if round_ % 2 == 0 else tuple(reversed(WAYS))
            for way in order:
                times[way].append(run_sweep(case, way, args.joblib_jobs))
                print(f"{case} round {round_} {way}: {times[way][-1]:.1f} s", flush=True)
        packed = statistics.median(p / s for p, s in zip(times["packed"], times["sequential"]))
        joblib = statistics.median(j / s for j, s in zip(times["joblib"], times["sequential"]))
        profile = step_profile(case)
        results[case] = {
            "seconds": times,
            "packed_over_sequential": packed,
            "joblib_over_sequential": joblib,
            **profile,
        }
        medians = [statistics.median(times[way]) for way in WAYS]
        lines.append(
            f"| {case} | {medians[0]:.0f} | {medians[1]:.0f} | {medians[2]:.0f} | {packed:.2f} | {joblib:.2f} |"
        )
    if args.cases:
        lines += [
            "",
            "In-process training steps (medians), eight models packed against one model unpacked (a sequential job's):",
            "",
        ]
        lines += [
            (
                "| case | one model | pack of 8 | pack / (8 x one) | forward | backward | 8 optimizers "
                "| GFLOP/step | GFLOP/s |"
            ),
            "|---|---|---|---|---|---|---|---|---|",
        ]
    for case in args.cases:
        r = results[case]
        lines.append(
            f"| {case} | {r['step_1'] * 1e3:.1f} ms | {r[f'step_{SEEDS}'] * 1e3:.1f} ms | "
            f"{r['packed_over_sequential_steps']:.2f} | {r['packed_forward_s'] * 1e3:.1f} ms | "
            f"{r['packed_backward_s'] * 1e3:.1f} ms | {r['packed_optimizers_s'] * 1e3:.1f} ms | "
            f"{r['packed_gflop']:.2f} | {r['packed_gflops_per_s']:.0f} |"
        )
    if args.memory:
        memory = {models: peak_memory(models) for models in (1, 8, 32)}
        per_model = (memory[32] - memory[8]) / 24
        results["memory_mib"] = {**{str(k): v for k, v in memory.items()}, "per_model": per_model}
        lines += [
            "",
            "Peak resident memory of a process training a pack of the default model (30 steps):",
            "",
        ]
        lines += ["| models | 1 | 8 | 32 | each model beyond 8 |", "|---|---|---|---|---|"]
        lines.append(f"| MiB | {memory[1]:.0f} | {memory[8]:.0f} | {memory[32]:.0f} | {per_model:.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
