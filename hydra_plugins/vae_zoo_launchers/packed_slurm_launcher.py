"""``hydra/launcher=packed_slurm``: each pack of a multirun as one SLURM job through submitit."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, setup_globals

from hydra_plugins.vae_zoo_launchers.packed_launcher import (
    checked_max_models,
    collect,
    packs_of,
    run_one,
    train_members,
)
from hydra_plugins.vae_zoo_launchers.resuming_slurm_launcher import ResumingSlurmLauncher

log = logging.getLogger(__name__)


def resumed(pack: list[tuple[list[str], int]], sweep_overrides: list[str]) -> list[tuple[list[str], int]]:
    """The pack's jobs, each with ``ckpt_path=last`` in place of any ``ckpt_path`` where the task's own
    overrides end with it (a requeued task: ``ResumingSlurmLauncher.checkpoint``)."""
    if sweep_overrides[-1:] != ["ckpt_path=last"]:
        return pack
    return [
        ([o for o in overrides if not o.startswith("ckpt_path=")] + ["ckpt_path=last"], n)
        for overrides, n in pack
    ]


class PackedSlurmLauncher(ResumingSlurmLauncher):
    """The jobs grouped as ``hydra/launcher=packed`` groups them (on the submitting machine, which sets up
    every job's directory and says why a lone job packs with no other); each pack is one task of a SLURM job
    array that trains it with ``train_pack``, and a lone job runs there as the basic launcher runs it.
    Near the time limit or when preempted, the pack's ``Preemption`` callback saves every job's
    ``last.ckpt`` and hands the signal to submitit, which requeues the pack (``checkpoint``, inherited:
    ``ckpt_path=last``, here put on every job of the pack)."""

    def __init__(self, max_models: int = 16, **params: Any) -> None:
        super().__init__(**params)
        self.max_models = checked_max_models(max_models)
        self.packs: list[list[tuple[list[str], int]]] = []  # each pack's jobs: their overrides and numbers
        self.first_pack = 0

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        if self.config.hydra.job.name != "train":  # eval.py and sample.py sweeps: nothing to pack
            return super().launch(job_overrides, initial_job_idx)
        setup_globals()
        numbered = [(list(o), initial_job_idx + i) for i, o in enumerate(job_overrides)]
        jobs, _ = collect(self.hydra_context, self.config, numbered)
        packs = packs_of(jobs, self.max_models, initial_job_idx)
        self.packs = [[numbered[n] for n in members] for members in packs]
        self.first_pack = initial_job_idx
        log.info("packed_slurm: %d jobs as %d SLURM jobs", len(jobs), len(packs))
        # one submission per pack, numbered from initial_job_idx; each task trains the pack of its number
        per_pack = super().launch([job_overrides[members[0]] for members in packs], initial_job_idx)
        returns: list[JobReturn | None] = [None] * len(jobs)
        for members, pack_returns in zip(packs, per_pack, strict=True):
            for n, returned in zip(members, pack_returns, strict=True):
                returns[n] = returned
        return returns

    def __call__(
        self,
        sweep_overrides: list[str],
        job_dir_key: str,
        job_num: int,
        job_id: str,
        singleton_state: dict[type, Singleton],
    ) -> list[JobReturn]:
        """The SLURM task of pack ``job_num``: its jobs trained as one pack (a lone job as itself), each with
        ``ckpt_path=last`` when this is a requeued task (``sweep_overrides`` then ends with it)."""
        Singleton.set_state(singleton_state)
        setup_globals()
        numbered = resumed(self.packs[job_num - self.first_pack], sweep_overrides)
        if len(numbered) == 1:
            return [run_one(self.hydra_context, self.config, *numbered[0], self.task_function)]
        jobs, returns = collect(self.hydra_context, self.config, numbered)
        for n in train_members(jobs, returns):
            returns[n] = run_one(self.hydra_context, self.config, *numbered[n], self.task_function)
        return returns
