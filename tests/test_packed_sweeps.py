"""``hydra/launcher=packed`` from the command line: which jobs pack, each job's own directory and summary row,
bad input answered in one line."""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import torch

from hydra_plugins.vae_zoo_launchers.packed_slurm_launcher import resumed
from tests.conftest import FAST, ROOT, run_command, run_script
from vae_zoo.components import component_class
from vae_zoo.config_groups import options
from vae_zoo.objectives.objective import Objective
from vae_zoo.packing.grouping import PER_MODEL, apart, group, packing_key
from vae_zoo.packing.job import PackJob

SHORT = (
    *FAST,
    "hydra/launcher=packed",
    "model.encoder.hidden=[32]",
    "model.decoder.hidden=[32]",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "callbacks=default",
    "logger=tensorboard",
)


def _rows(sweep: Path) -> list[dict[str, str]]:
    with open(sweep / "summary.csv") as handle:
        return list(csv.DictReader(handle))


def test_jobs_pack_by_equal_settings_up_to_max_models_and_say_why_one_trains_alone():
    a, b = {"seed": 0, "model": {"latent": {"dim": 8}}}, {"seed": 0, "model": {"latent": {"dim": 16}}}
    assert group([a, a, a, b], max_models=2) == [[0, 1], [2], [3]]
    assert apart([a, a, a, b], 2) is None  # alone only because the pack before it was full
    assert apart([a, a, a, b], 3).startswith(
        "it differs from job 0 in model.latent.dim (the models of a pack"
    )


def test_jobs_whose_schedules_differ_in_settings_pack_and_in_class_do_not(make_cfg):
    """Each model builds its own scheduler and early stopping from its job's settings: ``T_max`` or the
    patience may differ within a pack; the schedule's class, or having one, may not."""
    stops = "+callbacks@callbacks.early_stopping=early_stopping"
    keys = [
        packing_key(PackJob(make_cfg(*overrides)))
        for overrides in (
            ("scheduler=cosine", "model.scheduler.T_max=2", stops),
            ("scheduler=cosine", "model.scheduler.T_max=5", "+model.scheduler.eta_min=1e-5", stops)
            + ("callbacks.early_stopping.patience=3",),
            ("scheduler=plateau",),
            (),
        )
    ]
    assert group(keys, max_models=4) == [[0, 1], [2], [3]]
    assert apart(keys, 2).startswith("it differs from job 3 in model.scheduler (")
    assert apart(keys, 2).endswith("model.scheduler's settings, callbacks.early_stopping's settings)")


def test_jobs_whose_warm_up_cycles_or_free_bits_differ_pack_and_whose_gradient_estimate_differs_do_not(
    make_cfg,
):
    """A KL warm-up's steps and period, and the free bits, are each model's own; the gradient estimate is the
    pack's."""
    warm = "+callbacks@callbacks.kl_warmup=kl_warmup"
    keys = [
        packing_key(PackJob(make_cfg(*overrides)))
        for overrides in (
            (warm,),
            (warm, "callbacks.kl_warmup.period=40000"),
            (warm, "objective.gradient=dreg"),
            (warm, "objective.free_bits=0.5"),
        )
    ]
    assert group(keys, max_models=4) == [[0, 1, 3], [2]]
    assert apart(keys, 2).startswith("it differs from job 0 in objective.gradient (")


def test_every_objective_setting_a_packed_model_may_have_its_own_of_packs():
    """Each objective's ``per_model_settings`` (which a pack spreads per model) is among the settings jobs may differ
    in and still pack: a setting missing there would split a sweep over it into packs of one value each."""
    for name in options("objective"):
        objective = component_class(options("objective")[name], Objective, "objective")
        for setting in objective.per_model_settings:
            assert f"objective.{setting}" in PER_MODEL, (name, setting)


def test_a_packed_sweep_writes_every_jobs_directory_and_a_bad_job_fails_alone(tmp_path, data_dir):
    """Four jobs, two per pack: the two with ``model.optimizer.lr=-1`` fail with their one line (exit 2 at the
    end, after the summary); the two others train in their packs and write ordinary run directories."""
    sweep = tmp_path / "sweep"
    result = run_script(
        "train.py",
        "-m",
        "seed=0,1",
        "model.optimizer.lr=0.001,-1",
        "hydra.launcher.max_models=2",
        *SHORT,
        f"paths.data_dir={data_dir}",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 3, result.stderr[-3000:]
    assert all("model.optimizer.lr=-1 must be a finite number > 0" in line for line in errors[:2])
    assert errors[2].startswith("error: 2 of 4 jobs wrote no metrics.json")
    rows = _rows(sweep)[:4]
    trained = [row for row in rows if row.get("status") != "no metrics"]
    assert sorted(row["seed"] for row in trained) == ["0", "1"]
    for row in trained:
        job = sweep / row["job"]
        metrics = json.loads((job / "metrics.json").read_text())
        assert Path(metrics["checkpoint"]).parent == job / "checkpoints"
        assert (job / "checkpoints" / "last.ckpt").is_file() and (job / ".hydra" / "config.yaml").is_file()
        assert list((job / "tensorboard").rglob("events.out.tfevents.*"))
    assert result.stdout.count("packed: 1 job trains as one model: ") == 2  # each pack's good job


def test_jobs_with_what_does_not_pack_say_so_in_one_line_each_and_train_unpacked(tmp_path, data_dir):
    """A user's prior with state of no packed form: each job of the would-be pack says so in one line, then
    trains as the basic launcher runs it and writes its run."""
    sweep = tmp_path / "sweep"
    result = run_script(
        "train.py",
        "-m",
        "seed=0,1",
        "model.prior._target_=tests.fixtures.counting_prior.CountingPrior",
        *SHORT,
        f"paths.data_dir={data_dir}",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    refused = [line for line in result.stdout.splitlines() if "trains unpacked" in line]
    assert refused == [
        f"packed: {sweep / job} trains unpacked: CountingPrior does not pack yet: its state prior.served has no "
        "packed form -- run these jobs without hydra/launcher=packed"
        for job in ("0", "1")
    ]
    assert "as one model" not in result.stdout
    for job in ("0", "1"):
        checkpoint = torch.load(sweep / job / "checkpoints" / "last.ckpt", weights_only=False)
        assert "prior.served" in checkpoint["state_dict"]  # the prior it trained with
        assert json.loads((sweep / job / "metrics.json").read_text())["seed"] == int(job)


def test_an_optuna_search_of_the_learning_rate_trains_each_batch_of_trials_as_one_pack(tmp_path, data_dir):
    """``hparams_search=optuna`` over the learning rate alone, two trials at a time: each batch packs, and the
    best value Optuna reports is the best trial's validated ``optimized_metric``."""
    from omegaconf import OmegaConf

    sweep = tmp_path / "sweep"
    result = run_script(
        "train.py",
        "-m",
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.custom_search_space=null",
        *SHORT,
        f"paths.data_dir={data_dir}",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("packed: 2 jobs train as one model: ") == 2
    values = [json.loads((sweep / str(job) / "metrics.json").read_text())["val/elbo"] for job in range(4)]
    assert OmegaConf.load(sweep / "optimization_results.yaml").best_value == min(values)


def test_max_models_below_one_is_refused_in_one_line(tmp_path, data_dir):
    result = run_script(
        "train.py", "-m", "seed=0,1", "hydra.launcher.max_models=0", *SHORT, f"hydra.sweep.dir={tmp_path}"
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip().splitlines()[-1] == "error: hydra.launcher.max_models=0 must be an integer >= 1"
    )


#: ``hydra/launcher=packed_slurm`` on submitit's local executor, as a Hydra plugin of its own (Hydra instantiates
#: launchers only from the ``hydra_plugins`` namespace): the same grouping, submission and pack tasks, each
#: pack one local process where a cluster runs one SLURM job; SLURM-only settings dropped
LOCAL_PACKS = """
from omegaconf import OmegaConf
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.vae_zoo_launchers.packed_slurm_launcher import PackedSlurmLauncher


class LocalPacks(PackedSlurmLauncher):
    _EXECUTOR = "local"

    def __init__(self, max_models=16, **params):
        shared = set(OmegaConf.structured(BaseQueueConf).keys())
        super().__init__(max_models, **{key: value for key, value in params.items() if key in shared})
"""


def test_packed_slurm_submits_one_job_per_pack_and_each_writes_its_jobs(tmp_path, data_dir):
    """Three seeds, packs of two: two submitit jobs (a pack of two and a lone job), three ordinary job
    directories, the summary; a requeued task resumes every job of its pack from its last.ckpt."""
    plugin = tmp_path / "plugins" / "hydra_plugins" / "vae_zoo_local_packs"
    plugin.mkdir(parents=True)
    (plugin / "__init__.py").write_text("")
    (plugin / "local_packs.py").write_text(LOCAL_PACKS)
    sweep = tmp_path / "sweep"
    settings = [o for o in SHORT if o != "hydra/launcher=packed"]
    command = [
        sys.executable,
        str(ROOT / "train.py"),
        "-m",
        "seed=0,1,2",
        *settings,
        "hydra/launcher=packed_slurm",
        "hydra.launcher._target_=hydra_plugins.vae_zoo_local_packs.local_packs.LocalPacks",
        "hydra.launcher.max_models=2",
        f"paths.data_dir={data_dir}",
        f"hydra.sweep.dir={sweep}",
    ]
    result = run_command(command, pythonpath=f"{tmp_path / 'plugins'}{os.pathsep}{ROOT}")
    assert result.returncode == 0, result.stderr[-3000:]
    tasks = sorted(p for p in (sweep / ".submitit").iterdir() if p.name.isdigit())  # one per submitted task
    assert len(tasks) == 2
    logs = " ".join(p.read_text() for task in tasks for p in task.glob("*_log.out"))
    assert logs.count("packed: 2 jobs train as one model: ") == 1
    rows = _rows(sweep)
    assert sorted(row["seed"] for row in rows[:3]) == ["0", "1", "2"]
    for row in rows[:3]:
        assert (sweep / row["job"] / "metrics.json").is_file()

    pack = [(["seed=0"], 0), (["seed=1", "ckpt_path=old.ckpt"], 1)]
    assert resumed(pack, ["seed=0"]) == pack
    assert resumed(pack, ["seed=0", "ckpt_path=last"]) == [
        (["seed=0", "ckpt_path=last"], 0),
        (["seed=1", "ckpt_path=last"], 1),
    ]
