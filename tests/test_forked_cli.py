"""A script run forked from the preloaded server (``forked_cli``) ends as it ends in a fresh interpreter: the
same exit status, stdout and stderr (a traceback included), its working directory, environment and arguments,
its non-daemon threads joined and its ``atexit`` functions run."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.forked_cli import run_forked

SCRIPT = """\
import atexit, os, sys, threading, time
print("args", sys.argv[1:], "cwd", os.getcwd(), "env", os.environ.get("FORKED_CLI_TEST"))
print("to stderr", file=sys.stderr)
atexit.register(print, "atexit ran")
threading.Thread(target=lambda: (time.sleep(0.2), print("thread ran"))).start()
how = sys.argv[1]
if how == "raise":
    raise ValueError("the script's own error")
if how == "exit":
    sys.exit(3)
if how == "message":
    sys.exit("a message as exit code")
"""


@pytest.mark.parametrize("how", ["return", "raise", "exit", "message"])
def test_a_forked_run_ends_as_a_fresh_interpreter_run_ends(how, tmp_path):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    command = [sys.executable, str(script), how, "second argument"]
    env = {**os.environ, "FORKED_CLI_TEST": "set for this run"}
    fresh = subprocess.run(
        command, check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    forked = run_forked(command, tmp_path, env, timeout=60)
    assert (forked.returncode, forked.stdout, forked.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)
    assert (
        "thread ran" in fresh.stdout and "atexit ran" in fresh.stdout and "set for this run" in fresh.stdout
    )


def test_a_forked_run_past_its_timeout_is_killed(tmp_path):
    script = tmp_path / "script.py"
    script.write_text("import time\ntime.sleep(60)\n")
    with pytest.raises(subprocess.TimeoutExpired):
        run_forked([sys.executable, str(script)], tmp_path, dict(os.environ), timeout=1)
