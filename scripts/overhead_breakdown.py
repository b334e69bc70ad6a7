"""Where our training step spends the time the bare loop does not, segment by segment.

Runs `scripts/benchmark.py`'s setup (our composed config fitted by Lightning, with one bare step after
each of ours) and times the segments of both steps with a wall clock:

    ours: data + Lightning between batches   end of one training batch -> the next batch's start hooks
          Lightning before training_step      batch start -> our training_step is entered
          training_step                       our forward pass and loss (the bare: its forward pass)
          zero_grad + hooks                    training_step returned -> backward starts
          backward                            (the bare: zero_grad + backward)
          optimizer + guard + hooks           backward done -> the batch's end (the bare: optimizer.step)

The second epoch is timed (the first warms up). Run with nothing else on the machine. With
`--lightning-only` our training_step is replaced by the bare loop's loss and the non-finite guard is
off, which leaves what Lightning, the data module and the callbacks cost by themselves.

    python scripts/overhead_breakdown.py --model gaussian_vae [--lightning-only]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pytorch_lightning as pl
from benchmark import MODELS, BareLoop, bare_negative_elbo, synchronize

from vae_zoo.callbacks import NonFiniteGuard
from vae_zoo.cli import build_datamodule_and_model, build_trainer
from vae_zoo.compose import compose_config

OURS = (
    "data + Lightning between batches",
    "Lightning before training_step",
    "training_step",
    "zero_grad + hooks",
    "backward",
    "optimizer + guard + hooks",
)
BARE = ("data", "", "forward", "", "zero_grad + backward", "optimizer.step")


def timed_bare_step(bare: BareLoop) -> dict[str, float]:
    """One bare step, its segments in seconds."""
    marks = [time.perf_counter()]
    idx = next(bare.batches, None)
    if idx is None:
        bare.batches = bare.epoch()
        idx = next(bare.batches)
    x = bare.binarize(bare.images[idx])
    marks.append(time.perf_counter())
    loss = bare.loss(x)
    marks.append(time.perf_counter())
    bare.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    marks.append(time.perf_counter())
    bare.optimizer.step()
    bare.step_count += 1
    synchronize(bare.device)
    marks.append(time.perf_counter())
    names = ("data", "forward", "zero_grad + backward", "optimizer.step")
    return {name: end - start for name, start, end in zip(names, marks, marks[1:])}


class Segments(pl.Callback):
    """Wall-clock marks at our step's hooks; a bare step after each of ours, outside all segments."""

    def __init__(self, bare: BareLoop) -> None:
        self.bare = bare
        self.seconds: dict[str, float] = defaultdict(float)
        self.steps = 0
        self.timing = False
        self.last: float | None = None

    def mark(self, segment: str) -> None:
        now = time.perf_counter()
        if self.timing and self.last is not None:
            self.seconds["ours " + segment] += now - self.last
        self.last = now

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.timing, self.last = trainer.current_epoch == 1, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.mark(OURS[0])

    def on_before_zero_grad(self, trainer, pl_module, optimizer) -> None:
        self.mark(OURS[2])

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        self.mark(OURS[3])

    def on_after_backward(self, trainer, pl_module) -> None:
        self.mark(OURS[4])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        synchronize(pl_module.device)
        self.mark(OURS[5])
        bare = timed_bare_step(self.bare)
        if self.timing:
            self.steps += 1
            for name, seconds in bare.items():
                self.seconds["bare " + name] += seconds
        self.last = time.perf_counter()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="gaussian_vae", choices=MODELS)
    parser.add_argument("--lightning-only", action="store_true", help="train on the bare loop's loss")
    parser.add_argument("--overrides", nargs="*", default=[])
    args = parser.parse_args(argv)
    overrides = [
        f"model={args.model}",
        "trainer.max_epochs=2",
        "trainer.limit_val_batches=2",
        "eval.iw_samples=1",
    ]
    cfg = compose_config([*overrides, *args.overrides], Path(tempfile.mkdtemp()))
    pl.seed_everything(cfg.seed, verbose=False)
    datamodule, model = build_datamodule_and_model(cfg)
    trainer = build_trainer(cfg)
    segments = Segments(BareLoop(cfg, args.model, trainer.strategy.root_device))
    trainer.callbacks.insert(0, segments)
    training_step = model.training_step
    if args.lightning_only:
        model.model_callbacks = [c for c in model.model_callbacks if not isinstance(c, NonFiniteGuard)]

        def training_step(x, batch_idx):
            return bare_negative_elbo(
                args.model, model.model, x, segments.bare.temperature(trainer.global_step)
            )

    def marked_training_step(x, batch_idx):
        segments.mark(OURS[1])
        return training_step(x, batch_idx)

    model.training_step = marked_training_step
    trainer.fit(model, datamodule=datamodule)

    per_step = {name: seconds / segments.steps * 1e3 for name, seconds in segments.seconds.items()}
    what = "Lightning driving the bare loss" if args.lightning_only else "our path"
    lines = [
        f"{args.model}, {what}, ms per step (mean of {segments.steps} steps)",
        "",
        "| ours | ms | bare | ms |",
    ]
    lines.append("|---|---|---|---|")
    for ours, bare in zip(OURS, BARE):
        bare_ms = f"{per_step['bare ' + bare]:.3f}" if bare else ""
        lines.append(f"| {ours} | {per_step['ours ' + ours]:.3f} | {bare} | {bare_ms} |")
    ours_total = sum(v for k, v in per_step.items() if k.startswith("ours"))
    bare_total = sum(v for k, v in per_step.items() if k.startswith("bare"))
    lines.append(f"| **total** | **{ours_total:.3f}** | **total** | **{bare_total:.3f}** |")
    print("\n" + "\n".join(lines) + f"\n\nratio {ours_total / bare_total:.3f}")


if __name__ == "__main__":
    main()
