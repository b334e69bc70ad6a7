"""``hydra/launcher=packed``: the jobs of a multirun that differ only in what packs train together.

Jobs whose configs are equal but for ``vae_zoo.packing.grouping.PER_MODEL`` (and ``PER_MODEL_NODES``) form
packs of up to ``max_models``, each trained in this process by ``vae_zoo.packing.train_pack``; every job still
gets its directory (``.hydra/``, ``checkpoints/``, ``metrics.json``, its TensorBoard run) and its row in the sweep
summary. A job that packs with no other runs alone, as the basic launcher runs it, after one line saying
which setting kept it apart. A job whose setting is invalid, or whose guard stops it, fails alone with its
one line; the others train. ``hydra/launcher=packed_slurm`` submits each pack as one SLURM job
(``packed_slurm_launcher``).
"""

from __future__ import annotations

import copy
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus, configure_log, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

log = logging.getLogger(__name__)


def checked_max_models(max_models: int) -> int:
    """``hydra.launcher.max_models``, or one line and exit 2."""
    if not isinstance(max_models, int) or max_models < 1:
        print(f"error: hydra.launcher.max_models={max_models} must be an integer >= 1", file=sys.stderr)
        sys.exit(2)
    return max_models


def run_one(
    hydra_context: HydraContext,
    config: DictConfig,
    overrides: Sequence[str],
    idx: int,
    task_function: TaskFunction,
) -> JobReturn:
    """One job as the basic launcher runs it: its directory, ``.hydra/`` and log, then ``task_function``."""
    sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = sweep_config.hydra.job.num = idx
    result = run_job(
        hydra_context=hydra_context,
        task_function=task_function,
        config=sweep_config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    return result


def collect(hydra_context: HydraContext, config: DictConfig, numbered: Sequence[tuple[Sequence[str], int]]):
    """Every job (its overrides and number) with its directory set up as the basic launcher sets it up, and
    kept to train later (``PackJob``: its config and Hydra's); with their ``JobReturn``s."""
    from vae_zoo.packing.job import PackJob  # heavy (torch, Lightning): imported when a sweep runs

    jobs: list[PackJob] = []

    def keep(cfg: DictConfig) -> None:
        jobs.append(PackJob(copy.deepcopy(cfg), copy.deepcopy(HydraConfig.instance().cfg)))

    returns = [run_one(hydra_context, config, overrides, idx, keep) for overrides, idx in numbered]
    return jobs, returns


def packs_of(jobs, max_models: int, initial_job_idx: int) -> list[list[int]]:
    """The jobs' packs (indices into ``jobs``), saying for each lone job what kept it apart."""
    from vae_zoo.packing.grouping import apart, group, packing_key

    keys = [packing_key(job) for job in jobs]
    packs = group(keys, max_models)
    log.info("packed: %d jobs in %d packs of up to %d models", len(jobs), len(packs), max_models)
    for members in packs:
        reason = apart(keys, members[0]) if len(members) == 1 else None
        if reason:
            print(f"packed: job {initial_job_idx + members[0]} trains alone: {reason}")
    return packs


def train_members(jobs, returns: list[JobReturn]) -> list[int]:
    """Trains ``jobs`` as one pack (``train_pack``); each job's ``JobReturn`` gets its optimized metric, or
    None after its one line. Returns the jobs (indices) refused for what has no packed form (``NotPackable``),
    to run unpacked."""
    from vae_zoo.errors import NotPackable, VaeZooError
    from vae_zoo.packing.train_pack import train_pack

    unpackable = []
    for n, (job, result, returned) in enumerate(zip(jobs, train_pack(jobs), returns, strict=True)):
        returned.status = JobStatus.COMPLETED
        if isinstance(result, NotPackable):
            print(f"packed: {job.output_dir} trains unpacked: {result}")
            unpackable.append(n)
        elif isinstance(result, VaeZooError):
            print(f"error: {job.output_dir}: {result}", file=sys.stderr)
            returned.return_value = None
        else:
            returned.return_value = result.get(job.cfg.get("optimized_metric"))
    return unpackable


class PackedLauncher(Launcher):
    """Trains the packs of a multirun in this process, one after another (``max_models`` per pack)."""

    def __init__(self, max_models: int = 16) -> None:
        self.max_models = checked_max_models(max_models)
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        if self.config.hydra.job.name != "train":  # eval.py and sample.py sweeps: nothing to pack
            return [
                run_one(self.hydra_context, self.config, o, initial_job_idx + i, self.task_function)
                for i, o in enumerate(job_overrides)
            ]
        numbered = [(o, initial_job_idx + i) for i, o in enumerate(job_overrides)]
        jobs, returns = collect(self.hydra_context, self.config, numbered)
        for members in packs_of(jobs, self.max_models, initial_job_idx):
            if len(members) == 1:
                n = members[0]
                returns[n] = run_one(
                    self.hydra_context, self.config, job_overrides[n], initial_job_idx + n, self.task_function
                )
            else:
                unpackable = train_members([jobs[n] for n in members], [returns[n] for n in members])
                for n in (members[m] for m in unpackable):
                    returns[n] = run_one(
                        self.hydra_context,
                        self.config,
                        job_overrides[n],
                        initial_job_idx + n,
                        self.task_function,
                    )
        return returns
