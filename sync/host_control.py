"""Host-side control of a running runner: names on disk and the operator's client side.

An operator asks a running runner for work the app would otherwise ask for: a snapshot
(``car sync publish``; README, "Snapshots, restore and host-side publish") or a restore
of a kept snapshot (``car sync restore``). The request goes through the same kind of
control directory the app uses (``ControlDir``), kept in the instance's runner-private
``sync_state/host-requests/``, so a host-side publish is claimed, validated, answered and
recorded exactly like the app's ``request.json``; only the runner picks it up, so the
command needs a live runner (``runner_alive``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import CarError
from ..fsutil import atomic_write_json
from ..layout import InstancePaths

HOST_REQUESTS_DIR = "host-requests"  # under sync_state/: the host's request.json
RESTORE_FILE = "restore.json"  # a consumer's restore request (car sync restore)
RESTORE_RESPONSE_FILE = "restore-response.json"
PIN_FILE = "pin.json"  # under sync_state/: the snapshot a restored consumer stays on
KEPT_RECORDS_FILE = "kept_records.json"  # under sync_state/: the provider's kept records
RUNNER_LOCK_FILE = "runner.lock"  # held by `car run` (runner/instance_lock.py)
REQUEST_ID_HOST = "host-"  # request_id prefix of `car sync publish`
REQUEST_ID_SCHEDULE = "schedule-"  # request_id prefix of a SYNC.SCHEDULE snapshot


def host_requests_dir(paths: InstancePaths) -> Path:
    return paths.sync_state / HOST_REQUESTS_DIR


def runner_alive(paths: InstancePaths) -> bool:
    """True while a ``car run`` holds this instance's lock.

    A shared, non-blocking probe of the runner's exclusive ``flock``: the kernel drops
    that lock when the runner dies, so a crashed runner is never taken for a live one.
    """
    try:
        fd = os.open(paths.root / RUNNER_LOCK_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
    finally:
        os.close(fd)  # closing drops a lock the probe took
    return False


def read_json_file(path: Path) -> Any:
    """The parsed file, or None while it is absent or half-written."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def submit(
    directory: Path, name: str, body: dict[str, Any], response_name: str | None = None
) -> None:
    """Write a host request atomically, after removing the previous answer if named."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if response_name is not None:
        with contextlib.suppress(FileNotFoundError):
            (directory / response_name).unlink()
    atomic_write_json(directory / name, body, mode=0o600)


def wait_answer(
    path: Path,
    request_id: str,
    *,
    timeout: float,
    alive: Callable[[], bool],
    poll: float = 0.2,
) -> dict[str, Any] | None:
    """The final answer to ``request_id`` (not ``in_progress``), or None on timeout.

    Raises:
        RunnerGone: the runner stopped while the request waited.
    """
    deadline = time.monotonic() + timeout
    while True:
        answer = read_json_file(path)
        if (
            isinstance(answer, dict)
            and answer.get("request_id") == request_id
            and answer.get("status") != "in_progress"
        ):
            return answer
        if not alive():
            raise RunnerGone("the runner stopped before answering")
        if time.monotonic() >= deadline:
            return None
        time.sleep(poll)


class RunnerGone(CarError):
    """The runner that was to answer a host request is not running (any more)."""


def new_request_id(prefix: str) -> str:
    return f"{prefix}{time.time_ns()}"
