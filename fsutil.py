"""Atomic file writes: the one recipe every runner-written file uses
(docs/FORMAT.md, "Host-side layout").

temp file in the same real directory → write → fsync → chmod → ``os.replace``; the temp
file is removed on any failure, so no reader ever sees a half-written file and nothing
is left behind. The directory must not be a symlink: an app could otherwise point a
control directory somewhere else and make the runner write there. It is opened once
(``O_DIRECTORY|O_NOFOLLOW``) and every later step names files relative to that
descriptor, so swapping the directory for a symlink after the check redirects nothing.

The JSON writer is total over every value a JSON parser can hand us: it is never the
place a report fails (see ``dumps_json``).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import json
import logging
import math
import os
import re
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from .errors import CarError

_log = logging.getLogger(__name__)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# Deeper than any parser of ours accepts, and far from the encoder's recursion limit.
_MAX_WRITE_DEPTH = 100
# Python refuses to print an int of more than 4300 digits (~14,280 bits).
_MAX_INT_BITS = 14_000
_SURROGATE = re.compile("[\ud800-\udfff]")


def open_real_dir(directory: Path) -> int:
    """Open ``directory`` for ``dir_fd=`` use, refusing a symlink or a non-directory.

    Returns:
        A descriptor the caller must close.

    Raises:
        CarError: ``directory`` is a symlink or not a directory.
        OSError: it does not exist or cannot be opened.
    """
    try:
        return os.open(directory, _DIR_FLAGS)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise CarError(f"refusing to write into {directory}: not a real directory") from None
        raise


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
    dir_fd = open_real_dir(path.parent)
    try:
        with atomic_file_at(dir_fd, path.name, mode=mode) as handle:
            yield handle
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def atomic_file_at(dir_fd: int, name: str, *, mode: int = 0o644) -> Iterator[BinaryIO]:
    """``atomic_file`` for the entry ``name`` of the open directory ``dir_fd``.

    The temp file is created ``O_EXCL|O_NOFOLLOW`` (an app-made link or file of that
    name is never opened) and every step is relative to ``dir_fd``.
    """
    tmp, fd = _create_temp(dir_fd, name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), mode)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` atomically with permissions ``mode``.

    Raises:
        CarError: the parent is a symlink or not a directory.
        OSError: the write itself failed (the temp file is gone by then).
    """
    with atomic_file(path, mode=mode) as handle:
        handle.write(data)


def atomic_write_bytes_at(dir_fd: int, name: str, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to the entry ``name`` of the open directory ``dir_fd``, atomically.

    Raises:
        OSError: the write failed (the temp file is gone by then).
    """
    with atomic_file_at(dir_fd, name, mode=mode) as handle:
        handle.write(data)


def _create_temp(dir_fd: int, name: str) -> tuple[str, int]:
    for _ in range(100):
        tmp = f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            return tmp, os.open(tmp, _TEMP_FLAGS, 0o600, dir_fd=dir_fd)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temp file name", name)


def dumps_json(obj: Any) -> str:
    """The one JSON encoding for files we write: sorted keys, UTF-8, trailing newline.

    Strict JSON for any value a (lenient) JSON parser produces, so a report or an answer
    is never lost to what it echoes: a lone surrogate is written as U+FFFD (it has no
    UTF-8 form, and strict parsers refuse its escape); non-finite numbers, integers too
    long to print and values nested deeper than 100 levels become ``null``, as
    ``JSON.stringify`` does for non-finite numbers. Ordinary values are written exactly
    as ``json.dumps`` would. Types JSON has no form for still raise ``TypeError``.
    """
    try:
        text = _dumps(obj)
    except (ValueError, RecursionError):
        text = _dumps(_json_safe(obj))
        _log.warning(
            "wrote JSON with non-finite numbers, oversize integers or nesting deeper than "
            "%d levels replaced by null",
            _MAX_WRITE_DEPTH,
        )
    return _SURROGATE.sub("\ufffd", text) + "\n"


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)


def _json_safe(value: Any) -> Any:
    """A copy of ``value`` that ``_dumps`` can always encode; built without recursion."""
    holder: list[Any] = [None]
    stack: list[tuple[Any, Any, Any, int]] = [(holder, 0, value, 0)]
    while stack:
        parent, key, item, depth = stack.pop()
        nested = isinstance(item, dict | list | tuple)
        if (nested and depth >= _MAX_WRITE_DEPTH) or _unprintable_number(item):
            parent[key] = None
        elif isinstance(item, dict):
            parent[key] = mapping = dict.fromkeys(item)
            stack.extend((mapping, k, v, depth + 1) for k, v in item.items())
        elif nested:
            parent[key] = items = [None] * len(item)
            stack.extend((items, i, v, depth + 1) for i, v in enumerate(item))
        else:
            parent[key] = item
    return holder[0]


def _unprintable_number(item: Any) -> bool:
    if isinstance(item, float):
        return not math.isfinite(item)
    return isinstance(item, int) and item.bit_length() > _MAX_INT_BITS


def atomic_write_json(path: Path, obj: Any, *, mode: int = 0o644) -> None:
    """Atomically write ``obj`` as JSON with sorted keys."""
    atomic_write_bytes(path, dumps_json(obj).encode("utf-8"), mode=mode)


def atomic_write_json_at(dir_fd: int, name: str, obj: Any, *, mode: int = 0o644) -> None:
    """``atomic_write_json`` relative to an open directory (see ``atomic_write_bytes_at``)."""
    atomic_write_bytes_at(dir_fd, name, dumps_json(obj).encode("utf-8"), mode=mode)


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


class OwnerOnlyFileError(Exception):
    """A secret file that cannot be used: ``kind`` says why, ``detail`` gives the specifics.

    ``kind`` is ``unreadable`` (``detail``: the OS error), ``not_regular``, or ``shared``
    (group or others have access; ``detail``: the mode as ``0644``). Callers word the
    message for their own key, so the checks stay in one place and the wording with them.
    """

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail


def read_owner_only(path: Path | str, max_bytes: int | None, *, follow_symlinks: bool) -> bytes:
    """The content of a file only its owner may access (secrets and keys: README,
    "Securing a sync set"), at most ``max_bytes + 1`` bytes (None: all of it).

    The file is opened once and checked by ``fstat`` on that descriptor, so the bytes
    read are those of the file that passed the checks, not of whatever the name points
    to a moment later.

    Raises:
        OwnerOnlyFileError: as its ``kind`` says.
    """
    flags = os.O_RDONLY | os.O_CLOEXEC | (0 if follow_symlinks else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise OwnerOnlyFileError("unreadable", exc.strerror or str(exc)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OwnerOnlyFileError("not_regular")
        if st.st_mode & 0o077:
            raise OwnerOnlyFileError("shared", f"{stat.S_IMODE(st.st_mode):04o}")
        with os.fdopen(os.dup(fd), "rb") as handle:
            return handle.read() if max_bytes is None else handle.read(max_bytes + 1)
    except OSError as exc:
        raise OwnerOnlyFileError("unreadable", exc.strerror or str(exc)) from None
    finally:
        os.close(fd)
