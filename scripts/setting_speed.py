"""What a setting costs: the training step with it against the same step without, in one process.

``dreg``: ``objective=iwae`` with ``objective.gradient=dreg`` against IWAE's own gradient, on Burda et al.'s model
(``experiment=iwae_mnist``: 784-200-200-50 tanh, batch 100), at each ``--sizes`` value of k (default 5, 50).
``partitioned``: PIWAE (``objective.partitioned=true``: the decoder's backward pass twice) against MIWAE on the
same model, k = 4, at each ``--sizes`` number of groups (default 4, 16). ``dip``: ``objective.dip_weight=10``
(DIP-VAE-I: the batch covariance of the posterior means) against the ELBO, on the default model, at each ``--sizes``
batch size (default 128, 512). ``factor``: FactorVAE (``discriminator=mlp objective.factor_weight=40``: the
discriminator's three passes and its backward pass) with the paper's discriminator (five layers of 1000 units) and
with three of 256, against the ELBO without one, on the default model, at each ``--sizes`` batch size (default 128).
``tc``: ``objective.tc_weight=6`` (the total correlation's batch estimate, M^2 densities per unit) against the
ELBO, on the default model (``experiment=gaussian_mnist``: 784-512-256-32), at each ``--sizes`` batch size
(default 128, 512). ``hyperspherical``: ``latent=von_mises_fisher`` (Wood's rejection sampler, the Bessel
functions of its KL, the quadrature of its implicit gradient) and ``latent=power_spherical`` (a Beta draw, log-gamma
and digamma) against ``latent=normal`` of as many coordinates, on the default model, at each ``--sizes`` latent
size (default 3, 32). ``vector_quantized``: ``model=vq_vae`` (16 positions of 16 coordinates, codebooks of 64 and
1024 vectors: the nearest-code search, the straight-through sample, the codebook and commitment terms; and each with
the moving-average codebook, ``model.latent.codebook_update=ema``; and at 64 with the autoregressive prior of 512 and
256 units) against ``model=gaussian_vae`` on the default model, at each ``--sizes`` batch size (default 128).
``vector_quantized_grid``: the code grid of ``experiment=vq_grid_mnist`` (7 x 7 codes of conv nets, moving averages;
with dead-code restarts; with the autoregressive prior; with the PixelCNN prior) against the Gaussian VAE with the
same conv nets. A step is the objective's loss, its backward pass and the optimizer step, as Lightning runs them.
Rounds of ``--steps`` steps of each in turn, so that the machine's drifts hit all alike; a ratio is the median
over rounds of the setting's time per step over the baseline's (the first value). ``--compile``: all with
``model.compile=true model.compile_scope=loss`` (the loss and its backward pass compiled, elementwise work fused).

    python scripts/setting_speed.py dreg                # k = 5 and 50, 5 rounds of 20 steps
    python scripts/setting_speed.py partitioned         # 4 and 16 groups of 4 samples
    python scripts/setting_speed.py dip
    python scripts/setting_speed.py factor
    python scripts/setting_speed.py tc --sizes 128 --rounds 9 --out outputs/tc_speed.md
    python scripts/setting_speed.py tc --compile
    python scripts/setting_speed.py hyperspherical
    python scripts/setting_speed.py vector_quantized
    python scripts/setting_speed.py vector_quantized_grid
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch
from benchmark import git_commit, interleaved_step_seconds, step_run
from grad_variance import print_and_write

from vae_zoo.cli import build_datamodule_and_model
from vae_zoo.compose import compose_config

#: experiment=vq_grid_mnist's code grid, with the moving-average codebook
VQ_GRID = (
    "model.encoder.grid=true model.decoder.grid=true model.latent.grid=true model.latent.positions=49 "
    "model.latent.codebook_update=ema"
)


class Comparison(NamedTuple):
    """A setting's baseline value and the values measured against it (each may carry further overrides, after a
    space), and the run's overrides at each size."""

    setting: str
    values: tuple[str, ...]
    overrides: Callable[[int | str], list[str]]
    size: str
    sizes: tuple[int, ...]


COMPARISONS = {
    "dreg": Comparison(
        "objective.gradient",
        ("total", "dreg"),
        lambda k: ["experiment=iwae_mnist", "objective=iwae", f"objective.k={k}"],
        "k",
        (5, 50),
    ),
    "partitioned": Comparison(
        "objective.partitioned",
        ("false", "true"),
        lambda groups: [
            "experiment=iwae_mnist",
            "objective=iwae",
            "objective.k=4",
            f"objective.groups={groups}",
        ],
        "groups",
        (4, 16),
    ),
    "dip": Comparison(
        "objective.dip_weight",
        ("0", "10"),
        lambda batch: ["experiment=gaussian_mnist", f"data.batch_size={batch}"],
        "batch",
        (128, 512),
    ),
    "factor": Comparison(
        "discriminator",
        (
            "none",
            "mlp objective.factor_weight=40",
            "mlp objective.factor_weight=40 model.discriminator.hidden=[256,256,256]",
        ),
        lambda batch: ["experiment=gaussian_mnist", f"data.batch_size={batch}"],
        "batch",
        (128,),
    ),
    "tc": Comparison(
        "objective.tc_weight",
        ("1", "6"),
        lambda batch: ["experiment=gaussian_mnist", f"data.batch_size={batch}"],
        "batch",
        (128, 512),
    ),
    "hyperspherical": Comparison(
        "latent",
        ("normal", "von_mises_fisher", "power_spherical"),
        lambda dim: ["experiment=gaussian_mnist", f"model.latent.dim={dim}"],
        "dim",
        (3, 32),
    ),
    "vector_quantized": Comparison(
        "model",
        (
            "gaussian_vae",
            "vq_vae model.latent.k=64",
            "vq_vae model.latent.k=64 model.latent.codebook_update=ema",
            "vq_vae model.latent.k=64 model.latent.prior=autoregressive",
            "vq_vae model.latent.k=64 model.latent.prior=autoregressive model.latent.prior_hidden=256",
            "vq_vae model.latent.k=1024",
            "vq_vae model.latent.k=1024 model.latent.codebook_update=ema",
        ),
        lambda batch: ["experiment=gaussian_mnist", f"data.batch_size={batch}"],
        "batch",
        (128,),
    ),
    "vector_quantized_grid": Comparison(
        "model",
        (
            "gaussian_vae",
            f"vq_vae {VQ_GRID}",
            f"vq_vae {VQ_GRID} model.latent.restart_below=1",
            f"vq_vae {VQ_GRID} model.latent.prior=autoregressive",
            f"vq_vae {VQ_GRID} model.latent.prior=pixelcnn",
        ),
        lambda batch: [
            "experiment=gaussian_mnist",
            "encoder=conv",
            "decoder=conv",
            f"data.batch_size={batch}",
        ],
        "batch",
        (128,),
    ),
}


#: what ``--compile`` adds to both runs
COMPILED = ("model.compile=true", "model.compile_scope=loss")


def step_seconds(
    comparison: Comparison, size: int, rounds: int, steps: int, tmp: Path, compiled: bool = False
) -> dict[str, list[float]]:
    """Seconds per training step with each value of the setting at ``size`` (``compiled``: the loss compiled),
    per round (after one warm-up round, which also compiles)."""
    runs = {}
    for value in comparison.values:
        overrides = [
            *comparison.overrides(size),
            *(COMPILED if compiled else ()),
            *f"{comparison.setting}={value}".split(),
        ]
        overrides.append("seed=0")
        cfg = compose_config(overrides, tmp)
        datamodule, model = build_datamodule_and_model(cfg)
        # the training set's size, as training tells the objective (its setup)
        datamodule.setup()
        model.objective.training_images = datamodule.training_images
        runs[value] = step_run(datamodule, model, cfg.data.batch_size, steps)
    return interleaved_step_seconds(runs, rounds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("comparison", choices=sorted(COMPARISONS))
    parser.add_argument(
        "--sizes",
        nargs="*",
        type=int,
        help="k (dreg), groups (partitioned), batch sizes (tc, dip, factor, vector_quantized) or latent sizes "
        "(hyperspherical)",
    )
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (after one warm-up round)")
    parser.add_argument("--steps", type=int, default=20, help="steps of each per round")
    parser.add_argument("--compile", action="store_true", help="both with the loss compiled")
    parser.add_argument("--out", type=Path, help="default: outputs/<comparison>_speed[_compiled].md")
    args = parser.parse_args(argv)
    comparison = COMPARISONS[args.comparison]
    baseline, *measured = comparison.values
    # the overrides, the size a placeholder
    run = " ".join([*comparison.overrides(comparison.size.upper()), *(COMPILED if args.compile else ())])

    lines = [
        (
            f"Training step of {run}, {comparison.setting}={'/'.join(measured)} against {baseline}, {args.rounds} "
            f"rounds of {args.steps} steps of each in turn, commit {git_commit()}, {torch.get_num_threads()} threads."
        ),
        "",
        "| "
        + " | ".join(
            [comparison.size, f"ms per step, {baseline}"]
            + [f"ms per step, {value} | {value} / {baseline} (min–max over rounds)" for value in measured]
        )
        + " |",
        "|---|---|" + "---|---|" * len(measured),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes or comparison.sizes:
            seconds = step_seconds(comparison, size, args.rounds, args.steps, Path(tmp), args.compile)
            cells = [str(size), f"{1000 * statistics.median(seconds[baseline]):.2f}"]
            for value in measured:
                ratios = [m / b for m, b in zip(seconds[value], seconds[baseline])]
                cells += [
                    f"{1000 * statistics.median(seconds[value]):.2f}",
                    f"{statistics.median(ratios):.3f} ({min(ratios):.3f}–{max(ratios):.3f})",
                ]
            lines.append("| " + " | ".join(cells) + " |")
    suffix = "_compiled" if args.compile else ""
    print_and_write(lines, args.out or Path(f"outputs/{args.comparison}_speed{suffix}.md"))


if __name__ == "__main__":
    main()
