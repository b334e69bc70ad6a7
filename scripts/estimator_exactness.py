"""Every discrete estimator against the exact gradient of E_q[f(z)] on small enumerable models (see
``vae_zoo.estimators.exactness``): the largest |z| over logits of (mean estimate - exact) / standard error,
the largest bias relative to the exact gradient's norm, and the total variance of one estimate.

    python scripts/estimator_exactness.py                        # 20,000 draws, writes outputs/estimator_exactness.md
    python scripts/estimator_exactness.py --draws 100000 --train 300

Estimators with parameters of their own (NVIL's baseline, REBAR's and RELAX's temperature, scale and
network) are measured as built and after ``--train`` steps on their own objectives. VIMCO is measured on the
3-sample bound of a 3-unit binary model and 2 categoricals of 2 classes (every 3-tuple enumerated).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from vae_zoo.capabilities import BERNOULLI_LOGITS
from vae_zoo.components import component_class
from vae_zoo.config_groups import options
from vae_zoo.estimators.estimator import Estimator
from vae_zoo.estimators.exactness import SmallModel, binary_model, categorical_model, total_variance


def row(name: str, model: SmallModel, estimator: Estimator, draws: int, samples: int, note: str) -> str:
    scale = estimator.signal_scale().item() if name == "nvil" else 1.0
    z, mean, exact, estimates = model.z_scores(estimator, draws, samples, scale)
    bias = (mean - exact).norm().item() / exact.norm().item()
    kind = f"categorical {tuple(model.logits.shape)}" if model.categorical else f"binary, D={model.features}"
    unbiased = "yes" if estimator.unbiased else "no"
    variance = total_variance(estimates)
    return (
        f"| {name}{note} | {kind} | {unbiased} | {z.abs().max().item():.2f} | {bias:.4f} | {variance:.3g} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=20_000)
    parser.add_argument("--train", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("outputs/estimator_exactness.md"))
    args = parser.parse_args()
    torch.manual_seed(0)
    lines = [
        f"{args.draws} draws per estimate; |z|: largest over logits of (mean - exact) / standard error.",
        "",
        "| estimator | model | unbiased (stated) | largest \\|z\\| | bias / \\|exact\\| | total variance |",
        "|---|---|---|---|---|---|",
    ]
    for model in (binary_model(), categorical_model()):
        for name in options("estimator"):
            cls = component_class(options("estimator")[name], Estimator, "model.estimator")
            if not cls.requires.met_by(model.posterior(model.logits)) or cls.min_objective_samples > 1:
                continue
            if model.categorical and cls.requires is BERNOULLI_LOGITS:
                continue
            estimator = model.estimator(name)
            lines.append(row(name, model, estimator, args.draws, 1, ""))
            if estimator.param_groups() and args.train:
                model.train_estimator(estimator, steps=args.train)
                lines.append(row(name, model, estimator, args.draws, 1, f", trained {args.train} steps"))
    for model in (binary_model(dim=3), categorical_model(n=2, k=2)):
        lines.append(row("vimco", model, model.estimator("vimco"), args.draws, 3, " (3-sample bound)"))
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
