"""Checkpoints and run directories written before the component axes opened (commit 48663a0: the latent
family fixed by a subclass, the KL mode on the model) load, and evaluate to the numbers they were
written with. The fixtures are real runs of that commit (tiny networks, 3 training steps)."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import ROOT
from tests.test_golden_numbers import FIRST, this_machine
from vae_zoo.cli import evaluate
from vae_zoo.models import GammaVAE, GaussianVAE, GumbelSoftmaxVAE
from vae_zoo.objectives import ELBO

RUNS = ROOT / "tests" / "fixtures" / "runs_48663a0"
CLASSES = {"gaussian_vae": GaussianVAE, "gumbel_vae": GumbelSoftmaxVAE, "gamma_vae": GammaVAE}


@pytest.mark.parametrize("name", CLASSES)
def test_load_from_checkpoint_rebuilds_an_old_checkpoints_model(name):
    path = RUNS / name / "checkpoints" / "last.ckpt"
    model = CLASSES[name].load_from_checkpoint(path, map_location="cpu")
    saved = torch.load(path, weights_only=True)["state_dict"]
    assert model.state_dict().keys() == saved.keys()
    assert all(torch.equal(model.state_dict()[key], value) for key, value in saved.items())
    assert isinstance(model.objective, ELBO) and model.objective.kl == "analytic"


def evaluated_and_written(run, make_cfg) -> tuple[dict, dict]:
    """eval.py's metrics of a fixture run's last.ckpt (tested as the run was: one batch, k = 4), and the run's."""
    cfg = make_cfg(
        f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
        "trainer.accelerator=cpu",
        "trainer.limit_test_batches=1",  # as the run was tested
        "eval.iw_samples=4",
        "eval.iw_chunk=4",
        config_name="eval",
    )
    return evaluate(cfg), json.loads((run / "metrics.json").read_text())


@pytest.mark.parametrize("name", CLASSES)
def test_evaluating_an_old_run_reproduces_the_test_metrics_it_wrote(name, make_cfg, tmp_path):
    evaluated, written = evaluated_and_written(RUNS / name, make_cfg)
    for metric in ("test/elbo", "test/recon", "test/kl", "test/nll_iw"):
        assert evaluated[metric] == pytest.approx(written[metric], rel=1e-6), metric
    assert (evaluated["model"], evaluated["estimator"]) == (written["model"], written["estimator"])


# Runs of 3e54cd4, the last commit before the probabilistic model moved below Lightning: estimators with their
# own state (NVIL's baseline network and running statistics, RELAX's temperature, scale and surrogate network),
# a learned prior (VampPrior pseudo-inputs) and a flow (IAF).
RUNS_3E54CD4 = ROOT / "tests" / "fixtures" / "runs_3e54cd4"
NAMES_3E54CD4 = ("bernoulli_nvil", "bernoulli_relax", "vampprior", "iaf")


@pytest.mark.parametrize("name", NAMES_3E54CD4)
def test_a_3e54cd4_checkpoint_evaluates_to_the_numbers_it_was_written_with(name, make_cfg):
    """Bit for bit on the processor the runs were written on (the golden numbers' first); elsewhere to 1e-6, as
    float32 kernels of another processor round differently (an Intel Xeon's KL: up to 3.2e-7)."""
    evaluated, written = evaluated_and_written(RUNS_3E54CD4 / name, make_cfg)
    exact = json.loads(FIRST.read_text())["machine"] == this_machine()
    for metric in ("test/elbo", "test/recon", "test/kl", "test/nll_iw"):
        expected = written[metric] if exact else pytest.approx(written[metric], rel=1e-6)
        assert evaluated[metric] == expected, metric


@pytest.mark.parametrize(
    "run",
    [RUNS_3E54CD4 / name for name in NAMES_3E54CD4] + [RUNS / name for name in CLASSES],
    ids=lambda p: p.name,
)
def test_an_old_checkpoint_resumes(run, make_cfg, tmp_path):
    """Runs of 3e54cd4 and of 48663a0 (before the axes opened) continue training from their last.ckpt."""
    from vae_zoo.cli import train

    overrides = [o for o in (run / ".hydra" / "overrides.yaml").read_text().split("\n- ") if o.strip()]
    overrides = [
        o.strip().removeprefix("- ") for o in overrides if not o.startswith(("hydra.", "trainer.max_"))
    ]
    resume = ("trainer.max_epochs=2", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}")
    metrics = train(make_cfg(*overrides, *resume, output_dir=tmp_path))
    assert metrics["global_step"] == 6 and metrics["epochs"] == 2
