"""A command line Hydra cannot compose is one line with exit status 2, naming the nearest key or option where a
name was mistyped: checked before Hydra runs (``refuse_uncomposable``), and for every job of a sweep by the
``checked`` sweeper before the first job trains."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT, run_script
from vae_zoo.composition_errors import nearest, refuse_uncomposable

REFUSED = {
    "a misspelled key": (
        ["model.latent.dimm=3"],
        "model.latent.dimm: no such key in model.latent -- did you mean model.latent.dim?",
    ),
    "a misspelled group": (
        ["estimater=score_function"],
        "estimater: no such key in the config -- did you mean estimator?",
    ),
    "a misspelled top-level key": (
        ["modle=gaussian_vae"],
        "modle: no such key in the config -- did you mean model?",
    ),
    "a misspelled option": (
        ["model=gausian_vae"],
        "model=gausian_vae: model has no option 'gausian_vae' -- did you mean model=gaussian_vae?",
    ),
    "an appended group's option": (
        ["+experiment=disarm"],
        "experiment=disarm: experiment has no option 'disarm' (disarm is an option of estimator: estimator=disarm) -- did you mean experiment=disarm_mnist?",
    ),
    "an override that does not parse": (
        ["model.latent.dim=[1"],
        "model.latent.dim=[1: cannot be parsed (no viable alternative at input '[1') -- see https://hydra.cc/",
    ),
    "a sweep without -m": (["seed=0,1"], "Ambiguous value for argument 'seed=0,1'"),
    "a key already there, appended": (
        ["+model.latent.dim=3"],
        "Could not append to config. An item is already at 'model.latent.dim'; Either remove + prefix",
    ),
    "a sweep's fixed key": (
        ["-m", "seed=0,1", "model.latent.dimm=3"],
        "model.latent.dimm: no such key in model.latent -- did you mean model.latent.dim?",
    ),
    "a misspelled key to show": (
        ["--cfg", "job", "model.latent.dimm=3"],
        "model.latent.dimm: no such key in model.latent -- did you mean model.latent.dim?",
    ),
    "a misspelled option to describe": (
        ["--info", "config", "model=gausian_vae"],
        "model=gausian_vae: model has no option 'gausian_vae' -- did you mean model=gaussian_vae?",
    ),
}


@pytest.mark.parametrize("case", REFUSED)
def test_a_command_line_hydra_refuses_is_one_line_and_exit_status_2(case, capsys):
    argv, expected = REFUSED[case]
    with pytest.raises(SystemExit) as exit:
        refuse_uncomposable("train", argv)
    err = capsys.readouterr().err
    assert exit.value.code == 2
    assert err.startswith(f"error: {expected}") and err.count("\n") == 1, err


@pytest.mark.parametrize("command", ["train_main", "eval_main", "sample_main"])
def test_each_command_refuses_a_misspelled_key_before_importing_torch(command):
    """In a fresh interpreter (``run_script`` forks from one that has imported torch): the refusal comes before
    ``vae_zoo.cli`` and its 5 s of torch and Lightning imports."""
    probe = (
        "import sys\n"
        f"from vae_zoo.commands import {command}\n"
        "sys.argv = ['x.py', 'ckpt_path=x.ckpt', 'sed=3']\n"
        "try:\n"
        f"    {command}()\n"
        "finally:\n"
        "    print(sorted(m for m in ('torch', 'pytorch_lightning', 'vae_zoo.cli') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], check=False, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr == "error: sed: no such key in the config -- did you mean seed?\n"
    assert result.stdout == "[]\n"


def command_output(program: str, argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", program, *argv],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "command, argv",
    [("train", ["--help"]), ("train", ["--cfg", "job", "model=vq_vae"]), ("eval", ["--cfg", "hydra"])],
)
def test_hydra_answers_without_importing_torch_what_it_answered_after_the_imports(command, argv):
    """``--help``, ``--cfg`` and ``--info`` print what Hydra printed from ``vae_zoo.cli``'s task, in a fresh
    interpreter that never imports torch, Lightning or ``vae_zoo.cli``."""
    imported = "print(sorted(m for m in ('torch', 'pytorch_lightning', 'vae_zoo.cli') if m in sys.modules))"
    ours = command_output(
        f"import sys\nfrom vae_zoo.commands import {command}_main\nsys.argv[0] = '{command}.py'\n"
        f"try:\n    {command}_main()\nfinally:\n    {imported}\n",
        argv,
    )
    before = command_output(
        f"import sys\nfrom vae_zoo.cli import {command}_task\nsys.argv[0] = '{command}.py'\n{command}_task()",
        argv,
    )
    assert ours.returncode == before.returncode == 0, ours.stderr[-2000:]
    assert ours.stdout == before.stdout + "[]\n" and len(before.stdout.splitlines()) > 50


def test_a_resolved_config_is_shown_after_the_imports_its_resolvers_need():
    shown = run_script("train.py", "--cfg", "job", "--resolve", "-p", "trainer.precision")
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert shown.stdout == "32-true\n"


def test_eval_and_sample_refuse_their_own_keys(capsys):
    for config_name in ("eval", "sample"):
        with pytest.raises(SystemExit):
            refuse_uncomposable(config_name, ["ckpt_path=x.ckpt", "sed=3"])
        assert capsys.readouterr().err == "error: sed: no such key in the config -- did you mean seed?\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["model=gumbel_vae", "model.latent.n=4"],
        ["-m", "seed=0,1,2", "model=gamma_vae,gaussian_vae"],
        ["hparams_search=optuna"],  # hydra.mode=MULTIRUN in the config: sweeps without -m
        ["--help"],
        ["--cfg", "job", "model=gumbel_vae"],
        ["--shell-completion", "query=model.lat"],  # completion's words are not overrides: Hydra's to answer
    ],
)
def test_a_command_line_that_composes_passes(argv, capsys):
    refuse_uncomposable("train", argv)
    assert capsys.readouterr().err == ""


def test_hydra_full_error_leaves_the_stack_trace_to_hydra(monkeypatch, capsys):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    refuse_uncomposable("train", ["model.latent.dimm=3"])
    assert capsys.readouterr().err == ""


def test_nearest_names_only_a_close_spelling():
    assert nearest("dimm", ["dim", "hidden"]) == "dim"
    assert nearest("gausian_vae", ["gamma_vae", "gaussian_vae"]) == "gaussian_vae"
    assert nearest("size", ["dim"]) is None


def test_a_sweep_with_a_misspelled_value_stops_before_its_first_job_trains(tmp_path, data_dir):
    """Job 0 composes; job 1 names an option the group lacks: the sweeper's check answers, and no job runs."""
    sweep = tmp_path / "sweep"
    result = run_script(
        "train.py",
        "-m",
        "model=gaussian_vae,gausian_vae",
        f"paths.data_dir={data_dir}",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: model=gausian_vae: model has no option 'gausian_vae' -- did you mean model=gaussian_vae? (its options: "
        "bernoulli_vae, gamma_vae, gaussian_vae, gumbel_vae, two_layer_vae, vq_vae)"
    )
    assert [path.name for path in sweep.iterdir()] == ["multirun.yaml"]  # Hydra's record of the sweep, no job
