"""Kill a child process with SIGKILL at the exact point a test chose.

The child is a ``python -m <module> ARGS`` of a ``tests/support`` module whose code
reaches the chosen point, calls ``pause(tmp)`` (which writes ``tmp/paused`` and sleeps)
and is killed there: what a runner killed by the OOM killer or ``kill -9`` leaves behind.
Children are modules of their own, not code in a test module, so no test module is ever
imported a second time under another name.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PAUSED = "paused"


def pause(tmp: Path) -> None:
    """In the child: say where we are, then wait to be killed."""
    (tmp / PAUSED).write_text("1")
    time.sleep(3600)


def run_and_kill(tmp: Path, module: str, *args: str) -> None:
    """Run ``python -m module ARGS`` until it calls ``pause(tmp)``, then SIGKILL it.

    Raises:
        AssertionError: the child exited, or did not pause within 60 s.
    """
    (tmp / PAUSED).unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd="/")
    try:
        deadline = time.monotonic() + 60
        while not (tmp / PAUSED).exists():
            assert proc.poll() is None, "child exited before pausing"
            assert time.monotonic() < deadline, "child never paused"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
