"""Golden numbers: short seeded runs of the presets, recorded at 3e54cd4 (before the probabilistic model moved
below Lightning, torch 2.14.1) and required bit for bit since; torch 2.15.0 gives every one of them unchanged
(rewritten when the pins moved: only the file's torch version changed), so the file names 2.15.0.

Each case trains 30 steps on real MNIST in deterministic mode on the CPU and keeps the training loss of every
step (``train/loss`` through the CSV logger) and the final validation and test metrics (``metrics.json``).
A structural change keeps these numbers; a change that is meant to move them rewrites the file with
``python tests/test_golden_numbers.py --write <its file>`` and says why in its commit. Bit for bit holds on the processor
and torch version the numbers were recorded with (the file's ``machine``). Each processor the project is
tested on has its own file, recorded by code that gives the 3e54cd4 numbers bit for bit on the first: an Intel
Xeon (AVX-512)'s at d11b1e7, an AMD EPYC of x86 family 25 model 1 (Zen 3, AVX2)'s at 3110934 (the 3e54cd4
numbers came from another EPYC: on this one three cases differ by float32 roundings, losses up to 1.5e-7 and
metrics up to 1.3e-6 relative). On a processor with no file the first file's numbers are compared to 1e-3
relative: another processor's float32 kernels round differently, and where a step draws discrete samples
(DisARM, RELAX) or weighs scores (the score-function IWAE), a rounding difference that flips one sample grows
over 30 steps (the Xeon against the EPYC: 2.0e-4, 5.9e-4 and 2.7e-4; the other cases within 2e-7),
while any change of the math leaves that bound.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
import torch

GOLDEN = Path(__file__).parent / "golden"
#: the file whose numbers a processor without its own is compared to
FIRST = GOLDEN / "numbers_3e54cd4.json"
SHORT = (
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=30",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.log_every_n_steps=1",
    "trainer.deterministic=true",
    "trainer.accelerator=cpu",
    "data.eval_batch_size=100",
    "eval.iw_samples=10",
    "eval.iw_chunk=5",
    "logger=csv",
    "seed=0",
)
#: metrics that runs report since the numbers were recorded (each recorded number stays required)
ADDED_SINCE = ("test/active_units", "test/mutual_info", "test/marginal_kl")
CASES = {
    "gaussian": ("model=gaussian_vae",),
    "categorical_annealed": (
        "model=gumbel_vae",
        "callbacks.temperature.every_n_steps=5",
        "callbacks.temperature.rate=0.02",
    ),
    "gamma": ("model=gamma_vae",),
    "bernoulli_disarm": ("model=bernoulli_vae", "estimator=disarm", "model.latent.prior=learned"),
    "bernoulli_relax": ("model=bernoulli_vae", "estimator=relax"),
    "bernoulli_nvil": ("model=bernoulli_vae", "estimator=nvil"),
    "two_layer": ("model=two_layer_vae", "model.latent.dim=20", "model.latent.top=10"),
    "vampprior": (
        "experiment=vampprior_mnist",
        "prior=vamp",
        "model.prior.components=50",
        "callbacks.kl_warmup.steps=20",
    ),
    "iaf": ("flow=iaf",),
    "score_function_iwae": ("estimator=score_function", "objective=iwae", "objective.k=3"),
}


def this_machine() -> dict[str, str]:
    """The processor (its model name and x86 family and model: two EPYCs of one name round differently) and
    torch's version: what float32 results bit for bit depend on."""
    fields = {}
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    family = f"family {fields.get('cpu family', '?')} model {fields.get('model', '?')}"
    return {
        "cpu": fields.get("model name", "unknown"),
        "family": family,
        "torch": torch.__version__.split("+")[0],
    }


def recorded_numbers() -> tuple[dict, bool]:
    """The numbers recorded on this machine, and True; else the first file's, and False. A file records the
    fields of its ``machine`` that were known then (the first two lack ``family``): the most specific file
    whose every field is this machine's."""
    here = this_machine()
    files = [json.loads(path.read_text()) for path in sorted(GOLDEN.glob("numbers_*.json"))]
    mine = [numbers for numbers in files if numbers["machine"].items() <= here.items()]
    if not mine:
        return json.loads(FIRST.read_text()), False
    return max(mine, key=lambda numbers: len(numbers["machine"])), True


def run_case(make_cfg, overrides: tuple[str, ...], out: Path) -> dict:
    """The case's 30 training losses and its final float metrics, from a real ``train`` run in ``out``."""
    from vae_zoo.cli import train

    metrics = train(make_cfg(*overrides, *SHORT, output_dir=out))
    with (out / "csv" / "metrics.csv").open() as rows:
        losses = [float(row["train/loss"]) for row in csv.DictReader(rows) if row.get("train/loss")]
    return {
        "losses": losses,
        "metrics": {k: v for k, v in sorted(metrics.items()) if isinstance(v, float)},
        "kl": metrics["kl"],
    }


@pytest.mark.parametrize("case", CASES)
def test_the_presets_give_their_recorded_numbers_bit_for_bit(case, make_cfg, tmp_path):
    golden, recorded_here = recorded_numbers()
    expected = golden[case]
    got = run_case(make_cfg, CASES[case], tmp_path / case)
    assert len(got["losses"]) == 30
    assert set(got["metrics"]) - set(expected["metrics"]) <= set(ADDED_SINCE)
    recorded = {name: got["metrics"][name] for name in expected["metrics"]}
    if recorded_here:
        assert got["losses"] == expected["losses"]
        assert recorded == expected["metrics"]
    else:
        assert got["losses"] == pytest.approx(expected["losses"], rel=1e-3)
        assert recorded == pytest.approx(expected["metrics"], rel=1e-3)
    assert got["kl"] == expected["kl"]


if __name__ == "__main__":  # python tests/test_golden_numbers.py --write NAME: this commit's numbers
    import os
    import tempfile

    from hydra.core.global_hydra import GlobalHydra

    from vae_zoo.compose import compose_config

    if len(sys.argv) != 3 or sys.argv[1] != "--write":
        sys.exit("usage: python tests/test_golden_numbers.py --write numbers_<commit>_<processor>.json")
    data_dir = os.environ["VAE_ZOO_DATA_DIR"]

    def make_cfg(*overrides: str, output_dir: Path):
        GlobalHydra.instance().clear()
        return compose_config([f"paths.data_dir={data_dir}", *overrides], output_dir)

    numbers = {"machine": this_machine()}
    with tempfile.TemporaryDirectory() as tmp:
        for name, overrides in CASES.items():
            numbers[name] = run_case(make_cfg, overrides, Path(tmp) / name)
            print(name, numbers[name]["losses"][-1], numbers[name]["metrics"].get("test/nll_iw"), flush=True)
    (GOLDEN / sys.argv[2]).write_text(json.dumps(numbers, indent=1) + "\n")
