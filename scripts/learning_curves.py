"""Learning curves of finished runs, read back from their TensorBoard logs, as one PNG and a table.

    python scripts/learning_curves.py outputs/2026-12-01/10-00-00 outputs/2026-12-01/10-05-00 \
        --out docs/img/learning_curves.png
    python scripts/learning_curves.py outputs/disarm/nonlinear_* --metrics train/grad_log10_variance \
        --x step --out docs/img/variance.png --table outputs/disarm_nonlinear.md

One panel per metric (default: the epoch means of the training negative ELBO, ``train/elbo_epoch``, and the
validation negative ELBO, ``val/elbo``), one line per run, against the epoch (``--x epoch``: one value per
trained epoch) or the optimizer step (``--x step``: every logged value, e.g. the gradient variance of
``callbacks.gradient_variance``), labelled with the run's estimator (``--label estimator``) or its model,
latent and estimator with its test bound. ``--table`` writes, per run: the estimator, the objective, the
steps trained, the last epoch's training negative ELBO, test/elbo, test/nll_iw, and each metric's value
at the first, middle and last point of its curve.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

METRICS = ("train/elbo_epoch", "val/elbo")


def events(run: Path) -> EventAccumulator:
    (log,) = (run / "tensorboard").iterdir()
    accumulator = EventAccumulator(str(log), size_guidance={"scalars": 0})
    accumulator.Reload()
    return accumulator


def curve(run: Path, tag: str, x: str = "epoch") -> tuple[list[int], list[float]]:
    """``(xs, values)`` of ``tag`` in ``run``'s TensorBoard log. By epoch: one value per trained epoch
    (1-based), without the evaluation of the best checkpoint after training (logged as one epoch more); by
    step: every logged value at its step."""
    logged = events(run)
    if x == "step":
        points = sorted({e.step: e.value for e in logged.Scalars(tag)}.items())
        return [step for step, _ in points], [value for _, value in points]
    epoch_at_step = {e.step: int(e.value) for e in logged.Scalars("epoch")}
    trained = json.loads((run / "metrics.json").read_text())["epochs"]
    by_epoch = {epoch_at_step.get(e.step, 0) + 1: e.value for e in logged.Scalars(tag)}
    epochs = [epoch for epoch in sorted(by_epoch) if epoch <= trained]
    return epochs, [by_epoch[epoch] for epoch in epochs]


def label(run: Path, style: str) -> str:
    metrics = json.loads((run / "metrics.json").read_text())
    if style == "estimator":
        return metrics["estimator"]
    return f"{metrics['model']} ({metrics['latent']}, {metrics['estimator']}): test/nll_iw {metrics['test/nll_iw']:.2f}"


def table(runs: list[Path], tags: list[str], x: str) -> str:
    columns = ["estimator", "objective", "steps", "train −ELBO (last epoch)", "test −ELBO", "test bound (k)"]
    curves = {tag: {run: curve(run, tag, x) for run in runs} for tag in tags}
    for tag in tags:
        columns += [f"{tag} at {x} {where}" for where in ("first", "middle", "last")]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for run in runs:
        metrics = json.loads((run / "metrics.json").read_text())
        train = curve(run, "train/elbo_epoch")[1][-1]
        cells = [
            metrics["estimator"],
            metrics["objective"],
            str(metrics["global_step"]),
            f"{train:.2f}",
            f"{metrics['test/elbo']:.2f}",
            f"{metrics['test/nll_iw']:.2f} ({metrics['iw_samples']})",
        ]
        for tag in tags:
            xs, values = curves[tag][run]
            for index in (0, len(values) // 2, -1):
                cells.append(f"{values[index]:.2f} ({xs[index]})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--metrics", nargs="+", default=list(METRICS))
    parser.add_argument("--x", choices=("epoch", "step"), default="epoch")
    parser.add_argument("--label", choices=("run", "estimator"), default="run")
    parser.add_argument("--names", nargs="+", help="the legend's names, one per run (instead of --label's)")
    parser.add_argument("--out", type=Path, default=Path("outputs/learning_curves.png"))
    parser.add_argument("--table", type=Path, help="also write a markdown table of the runs here")
    parser.add_argument("--title", default="")
    args = parser.parse_args()
    figure = Figure(figsize=(5 * len(args.metrics), 4), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(args.metrics), squeeze=False)[0]
    names = args.names or [label(run, args.label) for run in args.runs]
    for ax, tag in zip(axes, args.metrics):
        for run, name in zip(args.runs, names, strict=True):
            xs, values = curve(run, tag, args.x)
            ax.plot(xs, values, marker="o", markersize=3, label=name)
        # a log-variance and a classifier's error rate are not in nats
        in_nats = not any(word in tag for word in ("log10", "error"))
        ax.set(xlabel=args.x, ylabel=f"{tag} (nats per image)" if in_nats else tag, title=tag)
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=7)
    if args.title:
        figure.suptitle(args.title, fontsize=9)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.canvas.print_png(args.out)
    print(f"wrote {args.out}")
    if args.table:
        text = table(args.runs, args.metrics, args.x)
        args.table.parent.mkdir(parents=True, exist_ok=True)
        args.table.write_text(text)
        print(text)


if __name__ == "__main__":
    main()
