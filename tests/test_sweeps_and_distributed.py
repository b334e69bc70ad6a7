"""Multirun with its summary, an Optuna sweep, the SLURM launcher config, and DDP on CPU (gloo)."""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.core.plugins import Plugins
from omegaconf import OmegaConf

from tests.conftest import FAST, run_script
from vae_zoo.config_groups import CONFIG_DIR


def _summary(sweep_dir: Path) -> list[dict[str, str]]:
    with open(sweep_dir / "summary.csv") as handle:
        return list(csv.DictReader(handle))


def _multirun(sweep_dir: Path, data_dir: str, *sweeps: str) -> list[dict[str, str]]:
    """``train.py -m <sweeps>`` with one fast_dev_run batch per job; the rows of its summary.csv."""
    result = run_script(
        "train.py",
        "-m",
        *sweeps,
        "debug=fdr",
        *FAST,
        f"paths.data_dir={data_dir}",
        f"hydra.sweep.dir={sweep_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return _summary(sweep_dir)


def test_a_three_model_multirun_writes_one_summary_row_per_job(tmp_path, data_dir):
    sweep = tmp_path / "sweep"
    rows = _multirun(sweep, data_dir, "model=gaussian_vae,gumbel_vae,gamma_vae")
    assert [(r["job"], r["model"], r["estimator"]) for r in rows] == [
        ("0", "gaussian_vae", "pathwise"),
        ("1", "gumbel_vae", "gumbel_softmax"),
        ("2", "gamma_vae", "implicit"),
    ]
    assert all(float(r["val/elbo"]) > 0 and float(r["test/nll_iw"]) > 0 for r in rows)
    assert "model=gumbel_vae" in rows[1]["overrides"]
    assert (sweep / "summary.md").read_text().count("\n") == 2 + len(rows)


def test_jobs_that_differ_only_in_seed_are_aggregated_to_mean_and_standard_deviation(tmp_path, data_dir):
    sweep = tmp_path / "seeds"
    rows = _multirun(sweep, data_dir, "model=gaussian_vae,gamma_vae", "seed=0,1,2")
    jobs, aggregated = rows[:6], rows[6:]
    assert [r["job"] for r in aggregated] == ["mean of seeds 0,1,2", "std of seeds 0,1,2"] * 2
    for mean, std in zip(aggregated[0::2], aggregated[1::2]):
        model = next(o for o in mean["overrides"].split() if o.startswith("model=")).split("=")[1]
        assert "seed=" not in mean["overrides"]
        group = [float(r["test/elbo"]) for r in jobs if r["model"] == model]
        assert len(group) == 3 == int(mean["n"]) and len(set(group)) == 3  # three seeds, three results
        assert float(mean["test/elbo"]) == pytest.approx(statistics.mean(group))
        assert float(std["test/elbo"]) == pytest.approx(statistics.stdev(group))
    text = (sweep / "summary.md").read_text()
    assert "Seeds aggregated" in text and text.count(" | 3 | ") == 2 and " ± " in text


def test_jobs_in_subdirs_named_by_their_overrides_are_summarised_where_a_value_holds_a_slash(
    tmp_path, data_dir
):
    """``hydra.sweep.subdir=${hydra.job.override_dirname}`` with ``optimized_metric=val/elbo`` (and a data folder's
    path) puts each job folders deep; the summary finds them (it listed none)."""
    sweep = tmp_path / "named"
    rows = _multirun(
        sweep,
        data_dir,
        "seed=0,1",
        "optimized_metric=val/elbo",
        "hydra.sweep.subdir=${hydra.job.override_dirname}",
    )
    jobs = [r["job"] for r in rows]
    assert [job.count("/") > 1 for job in jobs[:2]] == [True, True]  # the data folder's path nests them too
    assert ["optimized_metric=val/elbo" in job and f"seed={n}," in job for n, job in enumerate(jobs[:2])] == [
        True
    ] * 2
    assert jobs[2:] == ["mean of seeds 0,1", "std of seeds 0,1"]
    assert all(float(r["test/elbo"]) > 0 for r in rows[:2])


def test_a_two_trial_optuna_sweep_minimises_val_elbo(tmp_path, data_dir):
    sweep = tmp_path / "optuna"
    result = run_script(
        "train.py",
        "hparams_search=optuna",
        "model=gumbel_vae",
        "hydra.sweeper.n_trials=2",
        "debug=fdr",
        *FAST,
        f"paths.data_dir={data_dir}",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = _summary(sweep)
    assert len(rows) == 2
    for row in rows:  # each trial drew a learning rate, a latent size and an annealing rate
        assert all(
            key in row["overrides"]
            for key in ("model.optimizer.lr=", "model.latent.n=", "callbacks.temperature.rate=")
        )
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    assert best.best_value == min(float(r["val/elbo"]) for r in rows)


def test_the_slurm_launcher_composes(tmp_path):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node, launcher.timeout_min) == ("gpu", 1, 240)


def test_hydra_finds_the_projects_launchers_as_plugins():
    """Hydra instantiates a launcher only from a class its plugin scan registered under ``hydra_plugins``
    (``vae_zoo.slurm_launcher`` was refused: "not the hydra_plugins package")."""
    plugins = Plugins.instance()
    for option in ("slurm", "packed", "packed_slurm"):
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("train", overrides=[f"hydra/launcher={option}"], return_hydra_config=True)
        target = cfg.hydra.launcher._target_
        assert plugins.is_in_toplevel_plugins_module(target) and target in plugins.class_name_to_class, target


class RecordShards(pl.Callback):
    """Saves the indices this rank trains on in each epoch to ``<folder>/rank<r>_epoch<e>.pt``."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        indices = trainer.train_dataloader.shard_indices().cpu()
        torch.save(indices, Path(self.folder) / f"rank{trainer.global_rank}_epoch{trainer.current_epoch}.pt")


def test_two_process_ddp_on_cpu_trains_on_disjoint_shards_that_cover_the_data(tmp_path, data_dir):
    shards = tmp_path / "shards"
    shards.mkdir()
    result = run_script(
        "train.py",
        "trainer=ddp",
        "trainer.devices=2",
        "debug=limit",
        *FAST,
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={tmp_path / 'run'}",
        "+callbacks.shards._target_=tests.test_sweeps_and_distributed.RecordShards",
        f"+callbacks.shards.folder={shards}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]  # rank 1 ends cleanly too
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0 <= metrics["test/active_units"] <= 32  # summed over both processes' test images (no hang)
    assert (
        0 <= metrics["test/mutual_info"] <= math.log(2 * 4 * 500)
    )  # gathered over both processes' test images
    assert metrics["test/marginal_kl"] == pytest.approx(
        metrics["test/kl"] - metrics["test/mutual_info"], abs=1e-3
    )
    for epoch in (0, 1):
        first, second = (torch.load(shards / f"rank{r}_epoch{epoch}.pt") for r in (0, 1))
        assert len(first) == len(second) == 25_000
        assert not set(first.tolist()) & set(second.tolist())
        assert set(first.tolist()) | set(second.tolist()) == set(range(50_000))
    assert not torch.equal(torch.load(shards / "rank0_epoch0.pt"), torch.load(shards / "rank0_epoch1.pt"))
