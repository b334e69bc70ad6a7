"""Variance of the encoder's gradient under each estimator that pairs with a latent family, on real MNIST.

For each model the network is built from the project's config and trained briefly with its default
estimator, so the posterior is past its initialisation. Then, on one fixed batch and with those
weights, the gradient of the training loss (the model's own `training_step`: negative ELBO plus any
surrogate) with respect to the encoder side (encoder + latent head) is drawn `--draws` times under each
estimator (those with parameters of their own, which train with the model, are skipped: NVIL, REBAR,
RELAX). Reported per estimator: the norm of the mean gradient, the total variance (sum over
coordinates of the per-coordinate variance, the trace of the covariance), the variance relative to the
squared mean norm, and the ratio to the family's lowest total variance. This is Kingma & Welling's
argument (reparameterized versus score-function gradients) put into numbers.

    python scripts/grad_variance.py                        # all three models, 200 draws each
    python scripts/grad_variance.py --models gamma_vae --draws 500 --out outputs/grad_variance.md
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from vae_zoo.cli import build_datamodule_and_model
from vae_zoo.components import build_with_sizes
from vae_zoo.compose import compose_config
from vae_zoo.estimators.estimator import Estimator
from vae_zoo.pairing import valid_estimators

MODELS = ("gaussian_vae", "gumbel_vae", "gamma_vae")


def encoder_side(model) -> list[torch.nn.Parameter]:
    return [*model.model.encoder.parameters(), *model.model.latent.head.parameters()]


def briefly_train(model, datamodule, steps: int) -> None:
    """``steps`` optimizer steps on the training batches, epoch after epoch."""
    optimizer = model.configure_optimizers()
    step = 0
    while step < steps:
        for batch in datamodule.train_dataloader():
            loss = model.training_step(batch, step)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step == steps:
                return


def briefly_trained(overrides: list[str], directory: Path, seed: int, steps: int):
    """The datamodule (set up) and the model of ``overrides`` (composed with ``directory`` as its output folder),
    seeded with ``seed`` and trained ``steps`` steps (``briefly_train``) under a Trainer that logs nothing."""
    cfg = compose_config(overrides, directory)
    pl.seed_everything(seed, verbose=False)
    datamodule, model = build_datamodule_and_model(cfg)
    datamodule.setup()
    model.trainer = pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        log_every_n_steps=10**9,
    )
    briefly_train(model, datamodule, steps)
    return datamodule, model


def gradient_statistics(model, x: torch.Tensor, draws: int, warmup: int) -> dict[str, float]:
    params = encoder_side(model)
    total = sum(p.numel() for p in params)
    sums, squares = torch.zeros(total, dtype=torch.float64), torch.zeros(total, dtype=torch.float64)
    for draw in range(warmup + draws):
        grads = torch.autograd.grad(model.training_step(x, 0), params)
        if draw < warmup:  # lets a moving-average baseline settle first
            continue
        flat = torch.cat([g.flatten() for g in grads]).double()
        sums += flat
        squares += flat**2
    mean = sums / draws
    variance = (squares / draws - mean**2) * draws / (draws - 1)
    return {"mean_norm": mean.norm().item(), "total_variance": variance.sum().item()}


def print_and_write(lines: list[str], out: Path) -> None:
    """The report's ``lines`` printed and written to ``out``."""
    text = "\n".join(lines) + "\n"
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"written to {out}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=MODELS)
    parser.add_argument("--draws", type=int, default=200, help="gradient draws per estimator")
    parser.add_argument("--train-steps", type=int, default=300, help="brief training before measuring")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("outputs/grad_variance.md"))
    args = parser.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model_name in args.models:
            overrides = [f"model={model_name}", f"data.batch_size={args.batch_size}", f"seed={args.seed}"]
            datamodule, model = briefly_trained(overrides, Path(tmp), args.seed, args.train_steps)
            x = next(iter(datamodule.val_dataloader()))[: args.batch_size]
            family = []
            sizes = {
                "input_shape": model.model.input_shape,
                "latent_features": math.prod(model.model.latent.probe_posterior().event_shape),
                "condition_features": None,
            }
            for estimator_name in valid_estimators(model.model.latent, model.objective):
                config = compose_config(
                    [*overrides, f"estimator={estimator_name}"], Path(tmp)
                ).model.estimator
                estimator = build_with_sizes(
                    OmegaConf.to_container(config), Estimator, "model.estimator", sizes
                )
                if estimator.param_groups():
                    print(
                        f"{estimator_name} skipped: its own parameters train with the model, which this measurement does not"
                    )
                    continue
                model.model.estimator = estimator
                torch.manual_seed(args.seed)
                stats = gradient_statistics(
                    model, x, args.draws, warmup=20 if estimator_name == "score_function" else 0
                )
                family.append({"model": model_name, "estimator": estimator_name, **stats})
            lowest = min(r["total_variance"] for r in family)
            for r in family:
                r["relative"] = r["total_variance"] / r["mean_norm"] ** 2
                r["ratio"] = r["total_variance"] / lowest
            rows += family

    lines = [
        (
            f"Encoder-side gradient of the training loss, {args.draws} draws on one batch of {args.batch_size} MNIST "
            f"validation images, after {args.train_steps} training steps with the model's default estimator "
            f"(seed {args.seed}; Gumbel estimators at temperature 1.0; score function with its moving-average baseline)."
        ),
        "",
        "| model | estimator | mean-gradient norm | total variance | variance / norm^2 | x lowest |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['model']} | {r['estimator']} | {r['mean_norm']:.4g} | {r['total_variance']:.4g} | "
        f"{r['relative']:.4g} | {r['ratio']:.3g} |"
        for r in rows
    ]
    print_and_write(lines, args.out)


if __name__ == "__main__":
    main()
