"""Training throughput of vae_zoo against a bare PyTorch loop of the same model, in one process.

Our path is the real one: `conf/train.yaml` composed by Hydra (default callbacks, progress bar and
TensorBoard logger), fitted by Lightning. A bare loop is hand-written PyTorch: the same encoder,
decoder and parameter head, the same device-resident data and permutation, the same batch size and learning rate, with each model's negative ELBO written out by hand (Normal:
mu + sigma*eps; categorical: Gumbel-Softmax with the same annealed temperature; Gamma: torch's implicit
`rsample`). Two bare loops run beside ours:

    user   the loop a user writes: `torch.optim.Adam(model.parameters(), lr)`, torch's default
           implementation (the per-tensor loop on the CPU, foreach on CUDA), and dynamic binarization
           by `torch.bernoulli(images / 255)`
    same   our components without the framework: the same optimizer implementation as ours
           (`model.optimizer.impl`, fused by default) and our binarization (`binarize_dynamic`), so the
           ratio is the framework's own overhead

Steps are interleaved: after each of our training steps a callback runs one step of each bare loop (on
its own copy of the model), so that the machine's drifts, which reach +-10% within minutes on a shared
CPU, hit all paths alike. Per epoch, a bare loop's time is the sum of its steps and our time is the
epoch's wall time (first batch to the end of the last training batch; validation is not part of either)
less the bare steps inside it, so ours includes all Lightning does between batches. After one warm-up
epoch, `--epochs` epochs are timed and each ratio is the median of the per-epoch ratios ours / bare. Also
reported: importance-weighted evaluation throughput (`test/nll_iw` with k = 1000), and with `--compile`
the same with `model.compile=true`: encoder and decoder compiled, in ours and in the bare loops alike;
with `--overrides model.compile_scope=loss` our whole training loss is compiled and the bare loops, whose
loss is written by hand, stay eager as a user's loop is.

    python scripts/benchmark.py                                   # three models, device auto
    python scripts/benchmark.py --models gaussian_vae --epochs 5 --compile --out outputs/benchmark.md
    python scripts/benchmark.py --compile --overrides model.compile_scope=loss

`--estimators` measures instead the training step (the objective's loss, its backward pass and the
optimizer step, as Lightning runs them) of every gradient estimator on one model, the DisARM paper's
nonlinear VAE (`experiment=disarm_mnist`, 200 latents, batch 50), each against `pathwise` on the same
network with 200 Normal latents: rounds of `--steps` steps of each estimator in turn, so that drifts hit all
alike; the ratio is the median over rounds of the estimator's time per step over pathwise's.

    python scripts/benchmark.py --estimators --rounds 5 --steps 50 --out outputs/estimator_speed.md \
        --json docs/measurements/estimator_speed.json     # the file the documentation's estimator table reads
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra.utils import get_class, instantiate

from vae_zoo.cli import build_datamodule_and_model, build_trainer
from vae_zoo.compose import compose_config
from vae_zoo.data.datamodule import binarize_dynamic
from vae_zoo.latents.normal import MIN_SCALE
from vae_zoo.optimizers import build_optimizer, implementation_flags

MODELS = ("gaussian_vae", "gumbel_vae", "gamma_vae")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bare_negative_elbo(model_name: str, model, x: torch.Tensor, tau: float) -> torch.Tensor:
    """The model's negative ELBO, written by hand (constants read from the built model, so the two paths
    train the same model; ``tau`` is the Gumbel-Softmax temperature of this step)."""
    h = model.latent.head(model.encoder(x))
    if model_name == "gaussian_vae":
        loc, raw_scale = h.chunk(2, dim=-1)
        scale = F.softplus(raw_scale) + MIN_SCALE
        z = loc + scale * torch.randn_like(loc)
        kl = 0.5 * (loc.pow(2) + scale.pow(2) - 1 - 2 * scale.log()).sum(-1)
    elif model_name == "gumbel_vae":
        n, k = model.latent.n, model.latent.k
        logits = h.view(-1, n, k).float()
        u = torch.rand_like(logits).clamp_(
            torch.finfo(torch.float32).tiny, 1 - torch.finfo(torch.float32).eps
        )
        z = torch.softmax((logits - torch.log(-torch.log(u))) / tau, dim=-1).flatten(1)
        log_q = torch.log_softmax(logits, dim=-1)
        kl = (log_q.exp() * (log_q + math.log(k))).sum((1, 2))
    else:
        raw_concentration, raw_rate = h.chunk(2, dim=-1)
        floor = model.latent.floor
        q = torch.distributions.Gamma(F.softplus(raw_concentration) + floor, F.softplus(raw_rate) + floor)
        z = q.rsample()
        prior = torch.distributions.Gamma(model.latent.prior_concentration, model.latent.prior_rate)
        kl = torch.distributions.kl_divergence(q, prior).sum(-1)
    recon = F.binary_cross_entropy_with_logits(model.decoder(z), x, reduction="none").flatten(1).sum(-1)
    return (recon + kl).mean()


class BareLoop:
    """The same model and data as our path, trained by a hand-written loop, one step per call; ``optimizer``
    is ``user`` (plain ``torch.optim.Adam``, ``torch.bernoulli``) or ``same`` (our optimizer and binarization)."""

    def __init__(self, cfg, model_name: str, device: torch.device, optimizer: str = "same") -> None:
        pl.seed_everything(cfg.seed, verbose=False)
        datamodule, trained = build_datamodule_and_model(cfg)
        datamodule.setup()
        self.model = trained.model  # the probabilistic model alone: a hand-written loop needs no Lightning
        self.images = datamodule.splits["train"].to(device)
        self.model.to(device)
        if optimizer == "user":
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.model.optimizer.lr)
            self.binarize = lambda images: torch.bernoulli(images.float() / 255)
        else:
            self.optimizer = build_optimizer(cfg.model.optimizer, self.model.parameters(), device)
            self.binarize = binarize_dynamic
        precision = str(cfg.trainer.precision)  # mixed precision as a user writes it: autocast (+ scaler)
        self.autocast = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
        self.scaler = torch.amp.GradScaler(device.type) if precision == "16-mixed" else None
        self.model_name, self.device, self.batch_size = model_name, device, cfg.data.batch_size
        annealing = (cfg.get("callbacks") or {}).get("temperature")
        self.temperature = instantiate(annealing).temperature if annealing else lambda step: 1.0
        self.step_count = 0
        self.batches = iter(())

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return bare_negative_elbo(self.model_name, self.model, x, self.temperature(self.step_count))

    def epoch(self):
        order = torch.randperm(len(self.images), generator=torch.Generator().manual_seed(self.step_count))
        return iter(order.to(self.device).split(self.batch_size))

    def step(self) -> float:
        """One training step; returns its seconds."""
        synchronize(self.device)
        start = time.perf_counter()
        idx = next(self.batches, None)
        if idx is None:
            self.batches = self.epoch()
            idx = next(self.batches)
        x = self.binarize(self.images[idx])
        with torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None):
            loss = self.loss(x)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            self.optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.step_count += 1
        synchronize(self.device)
        return time.perf_counter() - start


class InterleavedSteps(pl.Callback):
    """After each of our training steps, one step of each bare loop, so that the machine's drifts hit all
    alike.

    Per epoch: a bare loop's seconds = the sum of its steps; our seconds = the wall time from the start of
    the epoch to the end of its last training batch, less the bare steps run inside it. Our time thus
    includes everything Lightning does between batches (data, hooks, callbacks, logging).
    """

    def __init__(self, bare: dict[str, BareLoop]) -> None:
        self.bare = bare
        self.ours: list[float] = []
        self.bare_seconds: dict[str, list[float]] = {name: [] for name in bare}

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        synchronize(pl_module.device)
        self._bare = dict.fromkeys(self.bare, 0.0)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        for name, loop in self.bare.items():
            self._bare[name] += loop.step()
        if batch_idx == trainer.num_training_batches - 1:
            self.ours.append(time.perf_counter() - self._start - sum(self._bare.values()))
            for name, seconds in self._bare.items():
                self.bare_seconds[name].append(seconds)


def compile_label(compile: bool | str, scope: str) -> str:
    """`` (compiled loss)``, `` (reduce-overhead)``, ...: how a row's model was compiled."""
    if not compile:
        return ""
    what = "compiled" if compile is True else compile
    return f" ({what}{' loss' if scope == 'loss' else ''})"


def measure(model_name: str, epochs: int, compile: bool | str, extra: list[str], tmp: Path) -> dict:
    """Our steps and both bare loops' on ``model_name``, interleaved; ``compile`` as ``model.compile``
    (the bare loops are built from the same config: with compile_scope=modules they are compiled alike)."""
    overrides = [
        f"model={model_name}",
        f"trainer.max_epochs={epochs + 1}",
        "trainer.limit_val_batches=2",
        "eval.iw_samples=1",
        f"model.compile={str(compile).lower()}",
        *extra,
    ]
    cfg = compose_config(overrides, tmp)
    pl.seed_everything(cfg.seed, verbose=False)
    datamodule, model = build_datamodule_and_model(cfg)
    trainer = build_trainer(cfg)
    device = trainer.strategy.root_device
    timer = InterleavedSteps({name: BareLoop(cfg, model_name, device, name) for name in ("user", "same")})
    trainer.callbacks.append(timer)
    trainer.fit(model, datamodule=datamodule)
    ours_s = timer.ours[1:]  # the first epoch warms up
    bare_s = {name: seconds[1:] for name, seconds in timer.bare_seconds.items()}

    x = datamodule.splits["test"][:500].float().div(255).to(model.device)
    model.eval()
    model.model.importance_weighted_nll(x[:50], 1000)  # warm-up
    synchronize(model.device)
    start = time.perf_counter()
    model.model.importance_weighted_nll(x, 1000)
    synchronize(model.device)
    images = min(len(datamodule.splits["train"]), trainer.num_training_batches * cfg.data.batch_size)
    iw = len(x) / (time.perf_counter() - start)
    row = {
        "model": model_name + compile_label(compile, cfg.model.compile_scope),
        "ours": images / statistics.median(ours_s),
    }
    for name, seconds in bare_s.items():
        row[name] = images / statistics.median(seconds)
        row[f"ratio_{name}"] = statistics.median(o / b for o, b in zip(ours_s, seconds))
        row[f"spread_{name}"] = (
            min(o / b for o, b in zip(ours_s, seconds)),
            max(o / b for o, b in zip(ours_s, seconds)),
        )
    return {**row, "iw": iw, "impl": optimizer_implementation(cfg, device)}


def optimizer_implementation(cfg, device: torch.device) -> str:
    """The implementation ``model.optimizer.impl`` resolves to on ``device``."""
    optimizer = cfg.model.optimizer
    flags = implementation_flags(optimizer.get("impl", "auto"), get_class(optimizer._target_), device)
    return "fused" if flags.get("fused") else "foreach" if flags.get("foreach") else "for_loop"


def estimator_step_seconds(rounds: int, steps: int, tmp: Path) -> dict[str, list[float]]:
    """Seconds per training step of each estimator (and ``pathwise`` on Normal latents), per round."""
    from vae_zoo.config_groups import options
    from vae_zoo.errors import ConfigError, cause_of_type

    models = {}
    for name in options("estimator"):
        latent = "normal" if name == "pathwise" else "bernoulli"
        objective = "iwae" if name == "vimco" else "elbo"
        extra = ["objective.k=2"] if name == "vimco" else []
        cfg = compose_config(
            [
                "experiment=disarm_mnist",
                f"latent={latent}",
                f"estimator={name}",
                f"objective={objective}",
                *extra,
            ],
            tmp,
        )
        if latent == "normal":
            cfg.model.latent = {**options("latent")["normal"], "dim": 200}
        try:
            datamodule, model = build_datamodule_and_model(cfg)
        except Exception as error:
            if cause_of_type(error, ConfigError) is None:
                raise
            continue
        models[name] = step_run(datamodule, model, cfg.data.batch_size, steps)
    return interleaved_step_seconds(models, rounds)


def step_run(datamodule, model, batch_size: int, steps: int) -> tuple:
    """What ``interleaved_step_seconds`` times of a model: it, its optimizer and ``steps`` binarized training
    batches."""
    datamodule.setup()
    images = binarize_dynamic(datamodule.splits["train"][: batch_size * steps])
    return model, model.configure_optimizers(), images.split(batch_size)


def interleaved_step_seconds(runs: dict[str, tuple], rounds: int) -> dict[str, list[float]]:
    """Seconds per training step (the loss, its backward pass and the optimizer step, as Lightning runs them)
    of each ``step_run``, per round: rounds of each run's batches in turn, so that drifts hit all alike, after
    one warm-up round."""
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds + 1):
        for name, (model, optimizer, batches) in runs.items():
            start = time.perf_counter()
            for x in batches:
                loss = model.training_loss(x).loss
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            seconds[name].append((time.perf_counter() - start) / len(batches))
    return {name: values[1:] for name, values in seconds.items()}


def git_commit() -> str:
    """The checkout's commit (with ``+`` if tracked files have changed), for the record of a measurement."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=False).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + (
        "+" if git("status", "--porcelain", "--untracked-files=no") else ""
    )


def estimator_table(seconds: dict[str, list[float]]) -> str:
    reference = seconds["pathwise"]
    lines = [
        "| estimator | ms per step | relative to pathwise (min–max over rounds) |",
        "|---|---|---|",
    ]
    for name, values in seconds.items():
        ratios = [v / r for v, r in zip(values, reference)]
        lines.append(
            f"| {name} | {1000 * statistics.median(values):.2f} | {statistics.median(ratios):.2f} "
            f"({min(ratios):.2f}–{max(ratios):.2f}) |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=MODELS)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per path (after one warm-up)")
    parser.add_argument("--compile", action="store_true", help="also measure model.compile=true")
    parser.add_argument("--overrides", nargs="*", default=[], help="Hydra overrides for every run")
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmark.md"))
    parser.add_argument("--estimators", action="store_true", help="time every estimator's step instead")
    parser.add_argument("--rounds", type=int, default=5, help="with --estimators: timed rounds")
    parser.add_argument("--steps", type=int, default=50, help="with --estimators: steps per round")
    parser.add_argument("--json", type=Path, help="with --estimators: also write the ratios as JSON here")
    args = parser.parse_args(argv)
    if args.estimators:
        with tempfile.TemporaryDirectory() as tmp:
            seconds = estimator_step_seconds(args.rounds, args.steps, Path(tmp))
        text = (
            f"CPU threads {torch.get_num_threads()}; {args.rounds} rounds of {args.steps} steps\n\n"
            + estimator_table(seconds)
        )
        print(text)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        if args.json:
            reference = seconds["pathwise"]
            ratios = {
                n: statistics.median(v / r for v, r in zip(values, reference))
                for n, values in seconds.items()
            }
            measured = {"setup": text.splitlines()[0], "commit": git_commit(), "relative_to_pathwise": ratios}
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(measured, indent=2) + "\n")
        return

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model_name in args.models:
            for compile in (False, True) if args.compile else (False,):
                rows.append(measure(model_name, args.epochs, compile, args.overrides, Path(tmp)))
    header = f"{' '.join(args.overrides) or 'defaults'}; {args.epochs} timed epochs per path"
    text = table(rows, header)
    print("\n" + text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"written to {args.out}")


def table(rows: list[dict], setup: str) -> str:
    """The rows of ``measure`` as a markdown table under a line naming the device and ``setup``."""
    device = (
        torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    )
    lines = [
        f"Device: {device}; torch {torch.__version__}, pytorch-lightning {pl.__version__}; MNIST; {setup}.",
        "",
        (
            "| model | optimizer (ours, same) | vae_zoo samples/s | user loop samples/s | same-optimizer loop "
            "samples/s | **ratio to the user loop** (min–max) | ratio to the same-optimizer loop (min–max) "
            "| IW eval images/s (k=1000) |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['model']} | {r['impl']} | {r['ours']:.0f} | {r['user']:.0f} | {r['same']:.0f} "
        f"| **{r['ratio_user']:.3f}** ({r['spread_user'][0]:.3f}–{r['spread_user'][1]:.3f}) "
        f"| {r['ratio_same']:.3f} ({r['spread_same'][0]:.3f}–{r['spread_same'][1]:.3f}) | {r['iw']:.1f} |"
        for r in rows
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
