"""Atomic file writes: the one recipe every runner-written file uses (SPEC §5.7).

temp file in the same real directory → write → fsync → chmod → ``os.replace``; the temp
file is removed on any failure, so no reader ever sees a half-written file and nothing
is left behind. The directory must not be a symlink: an app could otherwise point a
control directory somewhere else and make the runner write there.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from .errors import CarError


def _require_real_dir(directory: Path) -> None:
    st = os.lstat(directory)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise CarError(f"refusing to write into {directory}: not a real directory")


@contextlib.contextmanager
def atomic_file(path: Path, *, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A file object whose content becomes ``path`` atomically when the block ends.

    Written in chunks, so a large file never has to be in memory at once. On a clean
    exit: fsync, chmod ``mode``, ``os.replace``; on any exception the temp file
    (``.<name>.<random>.tmp`` beside ``path``) is removed and the exception propagates.

    Raises:
        CarError: the parent is a symlink or not a directory.
        OSError: the write itself failed (the temp file is gone by then).
    """
    directory = path.parent
    _require_real_dir(directory)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` atomically with permissions ``mode``.

    Raises:
        CarError: the parent is a symlink or not a directory.
        OSError: the write itself failed (the temp file is gone by then).
    """
    with atomic_file(path, mode=mode) as handle:
        handle.write(data)


def dumps_json(obj: Any) -> str:
    """The one JSON encoding for files we write: sorted keys, UTF-8, trailing newline."""
    return json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def atomic_write_json(path: Path, obj: Any, *, mode: int = 0o644) -> None:
    """Atomically write ``obj`` as JSON with sorted keys (SPEC §5.7)."""
    atomic_write_bytes(path, dumps_json(obj).encode("utf-8"), mode=mode)


def fsync_dir(directory: Path) -> None:
    """fsync a directory so a rename inside it survives a crash."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _libc_syncfs() -> object | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None
    return getattr(libc, "syncfs", None)


_SYNCFS = _libc_syncfs()


def sync_filesystems(paths: list[str] | tuple[str, ...]) -> None:
    """Flush the filesystems holding ``paths`` (Linux ``syncfs``), else everything.

    ``os.sync()`` would also wait for every other filesystem's write-back on the host,
    which made an apply's downtime depend on unrelated disk activity.

    Raises:
        OSError: syncfs reported an error for one of the filesystems.
    """
    if _SYNCFS is None:
        os.sync()
        return
    for path in paths:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if _SYNCFS(fd) != 0:  # type: ignore[operator]
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err), path)
        finally:
            os.close(fd)
