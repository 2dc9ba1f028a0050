"""Temp files a sweep can tell apart: still being written, or abandoned by a killed process.

A put into the shared ``file://`` directory and a download into a node's cache write a
temp file and rename it into place. A process killed with SIGKILL never runs its
``finally``, so its temp file (as big as the archive) would stay forever. Each writer
therefore holds an exclusive ``flock`` on its temp file from the moment it exists until it
is renamed or removed. The kernel drops that lock when the process dies, however it died,
so a sweep removes exactly the temp files no live process holds: a concurrent runner's
in-flight put survives, a dead one's is removed.

Why a lock and not the owner's pid in the name: runners that share a data directory may
run in different pid namespaces (containers), where another runner's pid means nothing,
and pids are reused; a lock held by the open file needs no such bookkeeping.

The only gap, between creating a file and locking it, is closed by the directory itself:
writers create and lock under a shared ``flock`` of the directory, and a sweep holds it
exclusively, so a sweep never sees a temp file that is not yet locked. Where ``flock`` is
not supported, writers carry on unlocked and the sweep removes nothing.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import stat
import tempfile
from collections.abc import Collection, Iterator
from pathlib import Path

from .cid import is_safe_blob_id

_log = logging.getLogger(__name__)

PUT_PREFIX = ".put-"  # file:// store: a put on its way to <dir>/<cid>
GET_PREFIX = ".get-"  # a node's cache: a download on its way to <cache>/<cid>
TEMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def _directory_lock(directory: Path, how: int) -> Iterator[bool]:
    """Hold ``flock(how)`` on ``directory``; yields False where that is not possible."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, how)
        except OSError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing drops the lock


class LockedTemp:
    """A temp file in ``directory``, flock'd by this process until it is placed or dropped.

    Use as a context manager: on exit the file is removed unless ``place`` renamed it.
    Write through ``fd`` (or ``os.fdopen(fd, closefd=False)``); the lock lives as long as
    the descriptor.
    """

    def __init__(self, directory: Path, prefix: str) -> None:
        with _directory_lock(directory, fcntl.LOCK_SH):
            fd, name = tempfile.mkstemp(prefix=prefix, suffix=TEMP_SUFFIX, dir=directory)
            with contextlib.suppress(OSError):  # unsupported: the sweep will not touch it
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.fd = fd
        self.path = Path(name)
        self._placed = False

    def place(self, dest: Path) -> None:
        """Rename the temp file to ``dest`` (atomic; replaces an existing ``dest``)."""
        os.replace(self.path, dest)
        self._placed = True

    def __enter__(self) -> LockedTemp:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if not self._placed:
                # Left behind if this fails: unlocked once closed, so the next sweep takes it.
                with contextlib.suppress(OSError):
                    _unlink_if_same(self.path, os.fstat(self.fd))
        finally:
            os.close(self.fd)


def _unlink_if_same(path: Path, st: os.stat_result) -> bool:
    """Unlink ``path`` only if it still names the file ``st`` describes."""
    try:
        now = os.lstat(path)
    except FileNotFoundError:
        return False
    if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
        return False
    os.unlink(path)
    return True


def _abandoned(path: Path) -> bool | None:
    """Remove ``path`` if no live process holds its lock; None if it could not tell."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return False  # placed or removed by its writer meanwhile
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False  # its writer is alive and still writing
            return None
        return _unlink_if_same(path, st)
    finally:
        os.close(fd)


def sweep_temp_files(directory: Path, prefix: str) -> list[str]:
    """Remove the ``prefix*`` temp files in ``directory`` whose writer is gone.

    Returns:
        The names removed. Never raises: a file that cannot be examined or removed is
        left for the next sweep (and logged).
    """
    removed: list[str] = []
    with _directory_lock(directory, fcntl.LOCK_EX) as locked:
        if not locked:
            return removed
        try:
            names = sorted(n for n in os.listdir(directory) if n.startswith(prefix))
        except OSError as exc:
            _log.warning("cannot list %s for abandoned temp files: %s", directory, exc)
            return removed
        for name in names:
            try:
                gone = _abandoned(directory / name)
            except OSError as exc:
                _log.warning("cannot remove abandoned temp file %s: %s", directory / name, exc)
                continue
            if gone:
                removed.append(name)
    return removed


def prune_local_copies(directory: Path, keep: Collection[str]) -> list[str]:
    """Remove every local blob copy in a node's private cache ``directory`` but ``keep``.

    Only regular files named like a blob id are touched (never directories, links or
    anything else found there). Never raises; failures are logged and left.
    """
    removed: list[str] = []
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        _log.warning("cannot list %s for stale downloads: %s", directory, exc)
        return removed
    for name in names:
        if name in keep or not is_safe_blob_id(name):
            continue
        path = directory / name
        try:
            if stat.S_ISREG(os.lstat(path).st_mode):
                os.unlink(path)
                removed.append(name)
        except FileNotFoundError:
            continue
        except OSError as exc:
            _log.warning("cannot remove stale download %s: %s", path, exc)
    return removed
