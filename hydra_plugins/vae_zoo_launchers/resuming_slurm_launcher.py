"""SLURM through submitit, with requeued jobs that resume instead of starting over."""

from __future__ import annotations

from typing import Any

from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher


class ResumingSlurmLauncher(SlurmLauncher):
    """``hydra/launcher=slurm``. Near its time limit, or when preempted, SLURM signals the job (submitit
    asks for SIGUSR2 90 s ahead); the ``Preemption`` callback stops at the next batch boundary, saves
    ``last.ckpt`` and hands the signal to submitit, which calls ``checkpoint`` and requeues the job. The
    requeued job runs the same overrides plus ``ckpt_path=last``, in the same job directory, so it goes on
    from that checkpoint (or from the newest periodic one, had the save not finished)."""

    def checkpoint(self, sweep_overrides: list[str], *args: Any, **kwargs: Any) -> Any:
        resumed = [o for o in sweep_overrides if not o.startswith("ckpt_path=")] + ["ckpt_path=last"]
        return super().checkpoint(resumed, *args, **kwargs)
