"""Walking the requested sources the way the tar archive does (sync/archive.py).

Same rules, so both formats hold the same entries: directories and regular files only,
links never followed, a symlink, FIFO, socket, device or hardlinked file fails the
capture (stage ``archive_build``) with an error naming the container path; a source
inside another source of the same volume is walked once; a source nested as a different
volume is pruned from its parent's walk and walked from its own volume. Children are
visited in sorted order, so the same tree always gives the same index.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from ...errors import SyncError
from ..archive_sink import archive_build_error, runner_entry
from ..paths import ResolvedPath


@dataclass(frozen=True, slots=True)
class WalkItem:
    """One directory or regular file found by the walk, with its ``lstat``."""

    host: str  # where to read it
    path: str  # its index path: the container path without the leading "/"
    st: os.stat_result

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)


def _covered(path: str, others: Iterable[str]) -> bool:
    return any(o != path and (o == "/" or path.startswith(o + "/")) for o in others)


def walked_sources(sources: Sequence[ResolvedPath]) -> list[ResolvedPath]:
    """The sources to walk: those not inside another source of the same volume."""
    return [
        s
        for s in sources
        if not _covered(
            s.container_path, [o.container_path for o in sources if o.binding == s.binding]
        )
    ]


def walk_sources(sources: Sequence[ResolvedPath]) -> Iterator[WalkItem]:
    """Every entry below the sources, parents before children.

    Raises:
        SyncError: stage ``archive_build``; a link, special or hardlinked file, or a
            path that vanished or cannot be read.
    """
    walked = walked_sources(sources)
    names = {s.container_path for s in walked}
    for source in walked:
        skip = frozenset(names - {source.container_path})
        try:
            yield from _walk_one(source, skip)
        except FileNotFoundError:
            raise archive_build_error(
                f"path {source.container_path!r} vanished while it was read"
            ) from None
        except OSError as exc:
            raise archive_build_error(
                f"path {source.container_path!r} cannot be read ({exc.strerror})"
            ) from None


def _walk_one(source: ResolvedPath, skip: frozenset[str]) -> Iterator[WalkItem]:
    stack = [(str(source.host_path), source.container_path)]
    while stack:
        host, container = stack.pop()
        st = os.lstat(host)
        if stat.S_ISDIR(st.st_mode):
            yield WalkItem(host, container.lstrip("/"), st)
            for name in sorted(os.listdir(host), reverse=True):
                if runner_entry(source, host, name):
                    continue
                child = posixpath.join(container, name)
                if child not in skip:
                    stack.append((os.path.join(host, name), child))
        elif stat.S_ISREG(st.st_mode):
            if st.st_nlink > 1:
                raise archive_build_error(
                    f"path {container!r} is a hardlinked file; hardlinks cannot be synced"
                )
            yield WalkItem(host, container.lstrip("/"), st)
        else:
            raise _unsupported(container, st.st_mode)


def _unsupported(container: str, mode: int) -> SyncError:
    what = "a symbolic link" if stat.S_ISLNK(mode) else "a FIFO, socket or device"
    return archive_build_error(
        f"path {container!r} is {what}; only regular files and directories can be synced"
    )
