"""``hydra/launcher=packed``: the jobs of a multirun that differ only in what packs train together.

Jobs whose configs are equal but for ``vae_zoo.packing.grouping.PER_MODEL`` form packs of up to
``max_models``, each trained in this process by ``vae_zoo.packing.train_pack``; every job still gets its
directory (``.hydra/``, ``checkpoints/``, ``metrics.json``, its TensorBoard run) and its row in the sweep
summary. A job that packs with no other runs alone, as the basic launcher runs it, after one line saying
which setting kept it apart. A job whose setting is invalid, or whose guard stops it, fails alone with its
one line; the others train.
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


class PackedLauncher(Launcher):
    """Trains the packs of a multirun in this process, one after another (``max_models`` per pack)."""

    def __init__(self, max_models: int = 16) -> None:
        if not isinstance(max_models, int) or max_models < 1:
            print(f"error: hydra.launcher.max_models={max_models} must be an integer >= 1", file=sys.stderr)
            sys.exit(2)
        self.max_models = max_models
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def _run(self, overrides: Sequence[str], idx: int, task_function: TaskFunction) -> JobReturn:
        """One job as the basic launcher runs it: its directory, ``.hydra/`` and log, then ``task_function``."""
        sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = sweep_config.hydra.job.num = idx
        result = run_job(
            hydra_context=self.hydra_context,
            task_function=task_function,
            config=sweep_config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return result

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from vae_zoo.errors import VaeZooError  # heavy (torch, Lightning): imported when a sweep runs
        from vae_zoo.packing.grouping import apart, group, packing_key
        from vae_zoo.packing.job import PackJob
        from vae_zoo.packing.train_pack import train_pack

        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        if self.config.hydra.job.name != "train":  # eval.py and sample.py sweeps: nothing to pack
            return [
                self._run(o, initial_job_idx + i, self.task_function) for i, o in enumerate(job_overrides)
            ]
        jobs: list[PackJob] = []

        def collect(cfg: DictConfig) -> None:  # the job's directory is set up; the pack trains it later
            jobs.append(PackJob(copy.deepcopy(cfg), copy.deepcopy(HydraConfig.instance().cfg)))

        returns = [self._run(o, initial_job_idx + i, collect) for i, o in enumerate(job_overrides)]
        keys = [packing_key(job) for job in jobs]
        packs = group(keys, self.max_models)
        log.info("packed: %d jobs in %d packs of up to %d models", len(jobs), len(packs), self.max_models)
        for members in packs:
            reason = apart(keys, members[0]) if len(members) == 1 else None
            if reason:
                print(f"packed: job {initial_job_idx + members[0]} trains alone: {reason}")
            if len(members) == 1:
                returns[members[0]] = self._run(
                    job_overrides[members[0]], initial_job_idx + members[0], self.task_function
                )
                continue
            for n, result in zip(members, train_pack([jobs[n] for n in members])):
                returns[n].status = JobStatus.COMPLETED
                if isinstance(result, VaeZooError):
                    print(f"error: {jobs[n].output_dir}: {result}", file=sys.stderr)
                    returns[n].return_value = None
                else:
                    returns[n].return_value = result.get(jobs[n].cfg.get("optimized_metric"))
        return returns
