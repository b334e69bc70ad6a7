"""Learning curves of finished runs, read back from their TensorBoard logs, as one PNG.

    python scripts/learning_curves.py outputs/2026-12-01/10-00-00 outputs/2026-12-01/10-05-00 \
        --out docs/img/learning_curves.png

One panel per metric (default: the epoch means of the training negative ELBO, ``train/elbo_epoch``, and the
validation negative ELBO, ``val/elbo``), one line per run against the epoch, labelled with the run's
model, latent and estimator from its ``metrics.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

METRICS = ("train/elbo_epoch", "val/elbo")


def curve(run: Path, tag: str) -> tuple[list[int], list[float]]:
    """``(epochs, values)`` of ``tag`` in ``run``'s TensorBoard log, one value per trained epoch (1-based),
    without the evaluation of the best checkpoint after training (logged as one epoch more)."""
    (log,) = (run / "tensorboard").iterdir()
    events = EventAccumulator(str(log), size_guidance={"scalars": 0})
    events.Reload()
    epoch_at_step = {e.step: int(e.value) for e in events.Scalars("epoch")}
    trained = json.loads((run / "metrics.json").read_text())["epochs"]
    by_epoch = {epoch_at_step.get(e.step, 0) + 1: e.value for e in events.Scalars(tag)}
    epochs = [epoch for epoch in sorted(by_epoch) if epoch <= trained]
    return epochs, [by_epoch[epoch] for epoch in epochs]


def label(run: Path) -> str:
    metrics = json.loads((run / "metrics.json").read_text())
    return f"{metrics['model']} ({metrics['latent']}, {metrics['estimator']}): test/nll_iw {metrics['test/nll_iw']:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--metrics", nargs="+", default=list(METRICS))
    parser.add_argument("--out", type=Path, default=Path("outputs/learning_curves.png"))
    parser.add_argument("--title", default="")
    args = parser.parse_args()
    figure = Figure(figsize=(5 * len(args.metrics), 4), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(args.metrics), squeeze=False)[0]
    for ax, tag in zip(axes, args.metrics):
        for run in args.runs:
            epochs, values = curve(run, tag)
            ax.plot(epochs, values, marker="o", markersize=3, label=label(run))
        ax.set(xlabel="epoch", ylabel=f"{tag} (nats per image)", title=tag)
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=7)
    if args.title:
        figure.suptitle(args.title, fontsize=9)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.canvas.print_png(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
