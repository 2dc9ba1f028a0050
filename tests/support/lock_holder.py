"""A separate process that holds an instance's ``runner.lock`` as ``car run`` does."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def start_holder(path: Path) -> subprocess.Popen[bytes]:
    """Start a process that takes the lock at ``path``, says so, and holds it until killed."""
    code = (
        "import time; from pathlib import Path;"
        "from container_apps.runner.instance_lock import InstanceLock;"
        f"InstanceLock(Path({str(path)!r})).acquire(); print('held', flush=True); time.sleep(600)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"held\n"
    return proc


def kill_holder(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL by PID, as a crash: the kernel drops the lock, the PID stays in the file."""
    proc.kill()
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


@contextmanager
def holding_lock(path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The lock at ``path`` is held by another live process inside the block."""
    proc = start_holder(path)
    try:
        yield proc
    finally:
        kill_holder(proc)
