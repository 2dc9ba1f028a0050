"""InstanceLock: one ``car run`` per instance and data directory.

Two runners of one instance would fight over one container name and one set of loop
volumes: the second would take the first one's container for a leftover and, when it
stops, unmount volumes the first still uses. An exclusive ``flock`` on
``<data>/instances/<id>/runner.lock`` makes the second one refuse to start before it
touches Docker or any volume. The kernel drops the lock when the process dies, so a
crashed runner never blocks the next one.

``runner_alive()`` is how ``car sync status`` tells whether the runner lives: it tries a
shared lock without waiting and drops it at once. A PID alone could be stale or reused by
another process; the lock is held exactly as long as the runner lives. So that this
microsecond probe never makes a starting runner refuse, ``acquire`` tries again for
``_ACQUIRE_PATIENCE`` seconds before it gives up.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import CarError

# A probe holds its shared lock for microseconds; a runner waits this long before it
# concludes that another runner holds the lock.
_ACQUIRE_PATIENCE = 0.5
_ACQUIRE_POLL = 0.02


class InstanceLock:
    """An exclusive, process-lifetime lock file holding the owner's PID."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock (idempotent for its holder).

        Raises:
            CarError: another process holds it; the message names that PID.
        """
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        if not _lock_within(fd, _ACQUIRE_PATIENCE):
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise CarError(
                f"instance {self.path.parent.name} is already run by PID {holder} "
                f"(data dir {self.path.parent.parent.parent})",
                hint="stop that `car run` first: one runner per instance and data dir",
            ) from None
        if not _same_file(fd, self.path):
            os.close(fd)  # a failed start removed it after we opened it: lock the new one
            return self.acquire()
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def discard(self) -> None:
        """Remove the lock file, then drop the lock (a failed first start leaves no file).

        Unlinked while still held; a runner that opened the old file meanwhile sees that
        it is no longer the one at the path and locks the new one (``acquire``).
        """
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
        self.release()

    def release(self) -> None:
        """Drop the lock (idempotent). The file stays: removing it could race a new holder."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = path.stat(follow_symlinks=False)
    except OSError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def _lock_within(fd: int, patience: float) -> bool:
    """Take the exclusive lock on ``fd``, trying until ``patience`` seconds have passed."""
    deadline = time.monotonic() + patience
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(_ACQUIRE_POLL)


@dataclass(frozen=True, slots=True)
class Liveness:
    """Whether the runner of an instance lives: ``alive`` is None when it cannot be told."""

    alive: bool | None
    pid: int | None = None  # the holder's PID, only while it is alive
    detail: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"alive": self.alive, "pid": self.pid, "detail": self.detail}


def runner_alive(path: Path) -> Liveness:
    """Probe the lock file ``path`` without creating it, waiting, or keeping any lock."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return Liveness(False, detail="no runner has started here (no runner.lock)")
    except OSError as exc:
        return Liveness(None, detail=f"cannot read {path}: {exc.strerror}")
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return Liveness(True, pid=_pid_in(fd), detail="runner.lock is held")
        except OSError as exc:
            return Liveness(None, detail=f"cannot lock {path}: {exc.strerror}")
        fcntl.flock(fd, fcntl.LOCK_UN)
        return Liveness(False, detail="runner.lock is not held: the runner stopped or crashed")
    finally:
        os.close(fd)


def _pid_in(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None
