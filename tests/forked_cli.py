"""``python <script> <args>`` run as its own process, forked from a server that has already imported torch,
Lightning, Hydra and vae_zoo.

A fresh interpreter spends about 5 s importing those before a script's first line; a refusal test then
spends 90% of its time starting up. Here each run is still a process of its own: its own interpreter state
after the imports, working directory, environment, exit status (a ``SystemExit`` code, 1 and a traceback for
an uncaught exception, ``-signal`` if killed), stdout and stderr, its threads joined and its ``atexit``
functions run before it exits, as the interpreter does at shutdown. What differs from a fresh interpreter:
the modules are imported before the environment is set (a variable read at import time keeps the server's
value; ``run_command`` falls back to a fresh interpreter for another ``PYTHONPATH``), and the script's own
folder is first on ``sys.path`` ahead of the server's paths rather than the interpreter's defaults.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import runpy
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path

#: what the scripts import before their first line (and their tests import anyway)
PRELOAD = ["vae_zoo.cli", "vae_zoo.packing.train_pack"]

_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(PRELOAD)


def exit_status(stop: SystemExit) -> int:
    """The status the interpreter exits with on ``stop``: its code, 0 for none, 1 (the code printed) for
    anything else."""
    if stop.code is None:
        return 0
    if isinstance(stop.code, int):
        return stop.code
    print(stop.code, file=sys.stderr)
    return 1


def _run(argv: list[str], cwd: str, env: dict[str, str], stdout: str, stderr: str) -> None:
    """In the forked child: ``argv`` run as ``python argv[0] argv[1:]`` would, then exit with its status."""
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    for fd, path in ((1, stdout), (2, stderr)):
        os.dup2(os.open(path, os.O_WRONLY | os.O_TRUNC), fd)
    sys.argv = list(argv)
    sys.path.insert(0, str(Path(argv[0]).resolve().parent))
    try:
        runpy.run_path(argv[0], run_name="__main__")
        status = 0
    except SystemExit as stop:
        status = exit_status(stop)
    except BaseException as error:  # noqa: BLE001 -- as the interpreter: any uncaught exception, a traceback and 1
        frames = error.__traceback__  # from the script's own frame on, without this function's and runpy's
        while frames is not None and frames.tb_frame.f_code.co_filename != argv[0]:
            frames = frames.tb_next
        traceback.print_exception(type(error), error, frames)
        status = 1
    threading._shutdown()  # what Py_FinalizeEx does first: wait for the script's non-daemon threads
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def run_forked(
    command: Sequence[str], cwd: Path, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess:
    """``command`` (``[sys.executable, script, *args]``) in a forked child; its output captured as text, as
    ``subprocess.run(..., capture_output=True, text=True)`` captures it. Past ``timeout`` seconds the child is
    killed and ``subprocess.TimeoutExpired`` raised."""
    with tempfile.TemporaryDirectory() as folder:
        out, err = Path(folder, "stdout"), Path(folder, "stderr")
        out.touch()
        err.touch()
        child = _context.Process(target=_run, args=(list(command[1:]), str(cwd), env, str(out), str(err)))
        child.start()
        child.join(timeout)
        if child.exitcode is None:
            child.kill()
            child.join()
            raise subprocess.TimeoutExpired(list(command), timeout)
        return subprocess.CompletedProcess(list(command), child.exitcode, out.read_text(), err.read_text())
