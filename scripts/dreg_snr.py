"""Signal-to-noise ratio of the encoder's and the decoder's gradients of the importance-weighted bound as k grows,
with IWAE's own gradient (``objective.gradient=total``), the doubly reparameterized one (``dreg``), with
``--groups M`` MIWAE's M groups of k/M samples (``objective.groups``: the same k samples per image) and PIWAE's
(``objective.partitioned``: the decoder on all k), and with ``--elbo-weight beta`` CIWAE's mix of the k-sample bound
and ELBO (``objective.elbo_weight``), on real MNIST.

Rainforth et al. (2018) showed that IWAE's encoder SNR falls like ``1/sqrt(k)`` while its decoder's rises like
``sqrt(k)``, and MIWAE, PIWAE and CIWAE as their remedies; Tucker et al. (2019) that DReG's encoder SNR grows. The
default Gaussian model (``model=gaussian_vae``) is trained briefly with ``objective=iwae`` so the posterior is past
its initialisation; then, on one batch of validation images and with those weights, the gradient of each objective
in the encoder side (encoder and latent head) and in the decoder is drawn ``--draws`` times per k. Reported per k
and objective: for each side the mean over coordinates of ``|mean| / sd`` (coordinates the images reach), and for
the encoder side the total variance (the trace of the covariance) and the norm of the mean gradient.

    python scripts/dreg_snr.py                          # k = 1, 10, 100; 100 draws on 64 images
    python scripts/dreg_snr.py --ks 1 5 25 125 --draws 200 --out outputs/dreg_snr.md
    python scripts/dreg_snr.py --ks 16 64 --groups 4 --elbo-weight 0.5 --draws 200
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from grad_variance import briefly_trained, encoder_side, print_and_write

from vae_zoo.objectives import IWAE


def gradient_draws(model, x: torch.Tensor, draws: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(draws, parameters)`` each: the gradient of the model's objective on ``x`` in the encoder side and in the
    decoder, drawn ``draws`` times."""
    encoder, decoder = encoder_side(model), list(model.model.decoder.parameters())
    rows = []
    for _ in range(draws):
        loss, _ = model.objective(model.model, x)
        rows.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, encoder + decoder)]).double())
    split = sum(p.numel() for p in encoder)
    draws = torch.stack(rows)
    return draws[:, :split], draws[:, split:]


def statistics(draws: torch.Tensor) -> dict[str, float]:
    mean, sd = draws.mean(0), draws.std(0)
    reached = sd > 0
    return {
        "snr": (mean[reached].abs() / sd[reached]).mean().item(),
        "total_variance": sd.square().sum().item(),
        "mean_norm": mean.norm().item(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ks", nargs="*", type=int, default=[1, 10, 100])
    parser.add_argument("--draws", type=int, default=100, help="gradient draws per k and gradient")
    parser.add_argument("--images", type=int, default=64, help="validation images in the batch")
    parser.add_argument("--train-steps", type=int, default=1000, help="brief training before measuring")
    parser.add_argument("--train-k", type=int, default=5, help="objective.k of the brief training")
    parser.add_argument(
        "--groups", type=int, help="also MIWAE and PIWAE: this many groups of k / groups samples"
    )
    parser.add_argument(
        "--elbo-weight", type=float, help="also CIWAE: the k-sample bound mixed with the ELBO"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("outputs/dreg_snr.md"))
    parser.add_argument("--overrides", nargs="*", default=[], help="further overrides of the model's config")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        overrides = ["objective=iwae", f"objective.k={args.train_k}", f"seed={args.seed}", *args.overrides]
        datamodule, model = briefly_trained(overrides, Path(tmp), args.seed, args.train_steps)
        x = next(iter(datamodule.val_dataloader()))[: args.images]

    rows = []
    for k in args.ks:
        variants = {"IWAE": IWAE(k, "total"), "DReG": IWAE(k, "dreg")}
        if args.groups and k % args.groups == 0:
            shape = f"{args.groups} x {k // args.groups}"
            variants[f"MIWAE, {shape}"] = IWAE(k // args.groups, groups=args.groups)
            variants[f"PIWAE, {shape}"] = IWAE(k // args.groups, groups=args.groups, partitioned=True)
        if args.elbo_weight:
            variants[f"CIWAE, {args.elbo_weight}"] = IWAE(k, elbo_weight=args.elbo_weight)
        for name, objective in variants.items():
            model.objective = objective
            torch.manual_seed(args.seed)
            encoder, decoder = gradient_draws(model, x, args.draws)
            rows.append(
                {"k": k, "gradient": name, **statistics(encoder), "decoder_snr": statistics(decoder)["snr"]}
            )
    lines = [
        (
            f"Gradients of the importance-weighted bound, {args.draws} draws on {args.images} MNIST "
            f"validation images, after {args.train_steps} training steps of objective=iwae objective.k={args.train_k} "
            f"(seed {args.seed}{', ' + ' '.join(args.overrides) if args.overrides else ''})."
        ),
        "",
        (
            "| samples per image | objective | encoder SNR (mean over coordinates) | decoder SNR | encoder total "
            "variance | encoder mean-gradient norm |"
        ),
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['k']} | {r['gradient']} | {r['snr']:.4g} | {r['decoder_snr']:.4g} | {r['total_variance']:.4g} | "
        f"{r['mean_norm']:.4g} |"
        for r in rows
    ]
    print_and_write(lines, args.out)


if __name__ == "__main__":
    main()
