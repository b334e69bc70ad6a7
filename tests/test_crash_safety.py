"""A crash at any instant costs at most the time between checkpoints and loses no file: a mid-epoch save
resumes exactly, kill -9 at 20 seeded instants (some mid-write) never leaves a checkpoint the resume
cannot use, a full disk or an I/O error keeps the previous checkpoint, one process per run directory, and
a SLURM job requeued at its time limit resumes."""

from __future__ import annotations

import errno
import io
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from tests.conftest import FAST, ROOT, run_script
from vae_zoo import checkpoint_io
from vae_zoo.checkpoint_io import CheckpointWriteError
from vae_zoo.cli import train
from vae_zoo.config_groups import CONFIG_DIR
from vae_zoo.run_lock import RunDirectoryLocked, run_directory_lock

SMALL = (
    "model.encoder.hidden=[64]",
    "model.decoder.hidden=[64]",
    "data.batch_size=32",
    "data.eval_batch_size=250",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.deterministic=true",
    "~callbacks.progress_bar",
    "~callbacks.image_grids",
    "logger=[]",
    *FAST,
)


class CrashAtStep(pl.Callback):
    """Raises before the training batch of optimizer step ``step``: a crash between two saves."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: pl.Trainer, *args) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError(f"simulated crash at step {self.step}")


def final_numbers(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, float)}


def test_resuming_from_a_mid_epoch_save_gives_the_uninterrupted_runs_numbers(make_cfg, tmp_path):
    run = (*SMALL, "trainer.max_epochs=2", "trainer.limit_train_batches=12")
    every_5 = "callbacks.periodic_checkpoint.every_n_train_steps=5"
    uninterrupted = train(make_cfg(*run, every_5, output_dir=tmp_path / "a"))
    crash = ("+callbacks.crash._target_=tests.test_crash_safety.CrashAtStep", "+callbacks.crash.step=8")
    with pytest.raises(RuntimeError, match="simulated crash at step 8"):
        train(make_cfg(*run, every_5, *crash, output_dir=tmp_path / "b"))
    last = tmp_path / "b" / "checkpoints" / "last.ckpt"
    saved = torch.load(last, map_location="cpu", weights_only=False)
    assert (saved["global_step"], saved["epoch"]) == (5, 0)  # mid-epoch: 5 of the epoch's 12 batches
    resumed = train(make_cfg(*run, every_5, f"ckpt_path={last}", output_dir=tmp_path / "b"))
    assert resumed["global_step"] == uninterrupted["global_step"] == 24
    assert final_numbers(resumed) == final_numbers(uninterrupted)  # to the last digit
    for run_dir in ("a", "b"):  # ModelCheckpoint's last.ckpt replaces the periodic one instead of versioning
        assert {p.name for p in (tmp_path / run_dir / "checkpoints").iterdir()} == {
            "last.ckpt",
            "epoch_001.ckpt",
        }


def test_every_minutes_saves_mid_epoch_by_the_clock(make_cfg, tmp_path, monkeypatch):
    clock = iter(range(0, 10_000, 50))  # each read of the callback's clock: 50 s later
    monkeypatch.setattr("vae_zoo.callbacks.periodic_checkpoint.monotonic", lambda: next(clock))
    real_save, saved_steps = torch.save, []

    def recording(obj, handle):
        if ".last.ckpt" in handle.name:
            saved_steps.append(obj["global_step"])
        real_save(obj, handle)

    monkeypatch.setattr(checkpoint_io, "serialize", recording)
    train(
        make_cfg(
            *SMALL,
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=6",
            "callbacks.periodic_checkpoint.every_minutes=1.5",
            output_dir=tmp_path / "run",
        )
    )
    assert saved_steps[:3] == [2, 4, 6]  # 100 s since the last save (two 50 s reads a batch) > 90 s


def slow_torch_save(obj, handle) -> None:
    """``torch.save`` written in 8 slices 40 ms apart, so that kills land inside writes."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()
    for start in range(0, len(data), len(data) // 8 + 1):
        handle.write(data[start : start + len(data) // 8 + 1])
        handle.flush()
        time.sleep(0.04)


def _train_in_child(cfg) -> None:
    code = 1
    try:
        checkpoint_io.serialize = slow_torch_save
        train(cfg)
        code = 0
    finally:
        os._exit(code)


def test_kill_9_at_20_instants_then_resume_finishes_with_the_uninterrupted_numbers(make_cfg, tmp_path):
    run = (
        *SMALL,
        "trainer.max_epochs=4",
        "trainer.limit_train_batches=20",
        "callbacks.periodic_checkpoint.every_n_train_steps=3",
    )
    uninterrupted = train(make_cfg(*run, output_dir=tmp_path / "uninterrupted"))
    directory = tmp_path / "killed"
    checkpoints = directory / "checkpoints"
    processes = multiprocessing.get_context(
        "forkserver"
    )  # children of a fresh process: no OpenMP pool forked
    processes.set_forkserver_preload(["vae_zoo.cli", "tests.test_crash_safety"])
    instants = random.Random(20261122)
    kills = mid_write = 0
    while kills < 20:
        cfg = make_cfg(*run, f"ckpt_path={'last' if checkpoints.is_dir() else 'null'}", output_dir=directory)
        child = processes.Process(target=_train_in_child, args=(cfg,))
        child.start()
        child.join(timeout=instants.uniform(0.3, 1.2))
        assert child.is_alive(), f"the run finished after {kills} kills: give it more steps"
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        kills += 1
        mid_write += any(checkpoints.glob(".*.partial-*"))  # killed while a checkpoint was being written
        for path in checkpoints.glob("*.ckpt"):  # what a resume can pick: never truncated
            torch.load(path, map_location="cpu", weights_only=False)
    assert mid_write >= 3, f"only {mid_write} of the kills hit a write"
    finished = train(make_cfg(*run, "ckpt_path=last", output_dir=directory))
    assert not list(checkpoints.glob(".*.partial-*"))  # the killed writers' leftovers were removed
    assert {p.name for p in checkpoints.iterdir()} == {
        "last.ckpt",
        "epoch_003.ckpt",
    }  # no last-v1.ckpt copies
    assert final_numbers(finished) == final_numbers(uninterrupted)
    print(f"{kills} kills, {mid_write} during a checkpoint write, {kills} resumes; final numbers equal")


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO])
def test_a_failed_checkpoint_write_stops_with_one_line_and_keeps_the_previous_one(
    make_cfg, tmp_path, monkeypatch, code
):
    real_save = torch.save
    writes = []

    def failing_after_first(obj, handle):
        writes.append(handle.name)
        if len(writes) > 2:  # the first epoch's two files are written, the next write fails half-way
            handle.write(b"half a checkpoint")
            raise OSError(code, os.strerror(code))
        real_save(obj, handle)

    monkeypatch.setattr(checkpoint_io, "serialize", failing_after_first)
    run_dir = tmp_path / "run"
    with pytest.raises(CheckpointWriteError) as error:
        train(make_cfg(*SMALL, "trainer.max_epochs=3", "trainer.limit_train_batches=4", output_dir=run_dir))
    message = str(error.value)
    assert "\n" not in message and str(run_dir / "checkpoints") in message and "MiB free there" in message
    assert os.strerror(code) in message and "the previous checkpoint is intact" in message
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert saved["global_step"] == 4  # the end of epoch 0, loadable
    assert not list((run_dir / "checkpoints").glob(".*.partial-*"))


def test_a_second_process_on_a_run_directory_stops_with_one_line(tmp_path, data_dir):
    run_dir = tmp_path / "run"
    with run_directory_lock(run_dir):
        result = run_script("train.py", f"paths.data_dir={data_dir}", f"hydra.run.dir={run_dir}", "debug=fdr")
    assert result.returncode == 2 and result.stdout == ""
    holder = f"process {os.getpid()} on {os.uname().nodename}"
    assert result.stderr.strip().splitlines() == [
        f"error: {run_dir} is in use by {holder}: wait for it to finish, or give this run another hydra.run.dir"
    ]
    assert not (run_dir / ".hydra").exists()  # refused before Hydra wrote anything there


def test_a_killed_holders_lock_passes_to_its_successor(tmp_path):
    hold = (
        "import sys, time; from pathlib import Path; from vae_zoo.run_lock import hold_run_directory; "
        "hold_run_directory(Path(sys.argv[1])); print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert holder.stdout.readline().strip() == "held"
    with (
        pytest.raises(RunDirectoryLocked, match=f"in use by process {holder.pid}"),
        run_directory_lock(tmp_path),
    ):
        pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with run_directory_lock(tmp_path):  # the lock file is still there; the kernel dropped the dead one's lock
        assert (tmp_path / ".lock").read_text().startswith(f"process {os.getpid()}")


def test_a_slurm_requeue_saves_on_the_signal_hands_it_to_submitit_and_resumes_exactly(make_cfg, tmp_path):
    """The requeue's logic without a cluster: SIGUSR2 (submitit's notice) stops the run at a batch boundary
    with ``last.ckpt``, the handler installed before (submitit's, here a recorder) gets the signal, the
    launcher resubmits the job's overrides with ``ckpt_path=last``, and that resume equals the run that was
    never stopped."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        launcher_cfg = compose(
            "train", overrides=["hydra/launcher=slurm"], return_hydra_config=True
        ).hydra.launcher
    launcher = instantiate(launcher_cfg)
    assert type(launcher).__name__ == "ResumingSlurmLauncher"  # the class Hydra's plugin scan loaded
    delayed = launcher.checkpoint(
        ["model=gamma_vae", "ckpt_path=old.ckpt", "seed=1"], "hydra.sweep.dir", 3, "7", {}
    )
    assert delayed.function is launcher and delayed.args[0] == ["model=gamma_vae", "seed=1", "ckpt_path=last"]

    run = (*SMALL, "trainer.max_epochs=2", "trainer.limit_train_batches=12")
    uninterrupted = train(make_cfg(*run, output_dir=tmp_path / "uninterrupted"))
    notice = ("+callbacks.notice._target_=tests.test_reliability.SignalAtStep", "+callbacks.notice.step=7")
    received = []
    submitit_handler = signal.signal(signal.SIGUSR2, lambda signum, frame: received.append(signum))
    try:
        with pytest.raises(SystemExit) as stopped:
            train(
                make_cfg(*run, *notice, "+callbacks.notice.signal_name=SIGUSR2", output_dir=tmp_path / "job")
            )
    finally:
        signal.signal(signal.SIGUSR2, submitit_handler)
    assert stopped.value.code == 128 + signal.SIGUSR2 and received == [signal.SIGUSR2]
    last = tmp_path / "job" / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == 7
    requeued = train(make_cfg(*run, *delayed.args[0][-1:], output_dir=tmp_path / "job"))  # ckpt_path=last
    assert final_numbers(requeued) == final_numbers(uninterrupted)
