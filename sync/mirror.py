"""Mirror mode: removing what the snapshot does not hold (README, "Consumer"; docs/FORMAT.md,
"Mirror mode").

With ``SYNC.APPLY_MODE: "mirror"`` a consumer also removes every file, symlink and
directory under the snapshot's ``archive_paths`` (mapped onto its own volumes) that the
snapshot does not hold: a stale SQLite ``-wal`` beside a newer database file is
corruption, and users of replication tools expect ``--delete``.

The removals are planned at the commit, with the app stopped (so nothing the app
writes afterwards escapes the walk), and appended to the journal's plan *before* the
journal header is written, so every removal is journaled before the first write. They
run after the snapshot's writes, in plan order, and each one is a ``rename`` of the
entry into the per-apply backup dir as ``<n>.bak`` — the marker of a replaced entry —
so rollback and start-up recovery put it back unchanged (``sync/rollback.py``: the
same undo as any replaced entry; mode, owner, mtime and a directory's whole subtree
travel with the rename), and a successful apply drops it with the backup dir.

Rules of the walk:
- it never follows a link: entries are read with ``lstat``/``scandir`` and a link is
  removed as a link (``rename`` never follows it), its target untouched;
- it only looks below an archive path root that the snapshot holds as a directory and
  that is a real directory on the volume; the root itself is never removed;
- a directory the snapshot does not hold is removed whole (one rename), one it holds
  is descended into;
- a volume root's runner entries (``.car-sync-*``) and its ``lost+found`` (the
  filesystem's) are never touched, and an entry whose
  container path maps to another volume (a nested bind's mount point) is left alone.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import replace

from ..errors import RequestRejected
from .journal import KIND_DIR, KIND_PARENT, Journal, PlannedOp
from .paths import PathResolver, ResolvedPath
from .preflight import RESERVED_PREFIX
from .rollback import marker

KIND_REMOVE = "remove"  # mirror mode: an entry the snapshot does not hold, moved aside
_FSCK_DIR = "lost+found"  # ext4's own directory at a volume root: the filesystem's, not the app's


class RemovalPlanner:
    """Finds what mirror mode removes, from the journaled plan and the stopped volumes."""

    def __init__(self, journal: Journal, resolver: PathResolver, log: logging.Logger) -> None:
        self._journal = journal
        self._resolver = resolver
        self._log = log

    def plan(self, archive_paths: tuple[str, ...], first_index: int) -> list[PlannedOp]:
        """The removal ops, numbered from ``first_index`` (nothing is changed yet)."""
        held: set[str] = set()
        dirs: set[str] = set()
        for op in self._journal.ops():
            held.add(op.host_path)
            if op.kind in (KIND_DIR, KIND_PARENT):
                dirs.add(op.host_path)
        removals: list[PlannedOp] = []
        seen: set[str] = set()
        for scope in dict.fromkeys(archive_paths):
            root = self._root(scope, dirs)
            if root is None:
                continue
            for resolved in self._walk(root, held):
                if str(resolved.host_path) not in seen:  # nested archive paths meet twice
                    seen.add(str(resolved.host_path))
                    removals.append(_removal(first_index + len(removals), resolved))
        return removals

    def _root(self, scope: str, dirs: set[str]) -> ResolvedPath | None:
        try:
            root = self._resolver.resolve(scope)
        except RequestRejected:
            return None  # validated before the stop; a path no longer mapped is not ours
        host = str(root.host_path)
        try:
            st = os.lstat(host)
        except OSError:
            return None
        if host not in dirs or not stat.S_ISDIR(st.st_mode):
            self._log.info("mirror: %s is not a directory of the snapshot; left as is", scope)
            return None
        return root

    def _walk(self, root: ResolvedPath, held: set[str]) -> Iterator[ResolvedPath]:
        """Entries below ``root`` the snapshot does not hold, top-down, never into links."""
        stack = [root]
        while stack:
            current = stack.pop()
            with os.scandir(current.host_path) as entries:  # d_type: no lstat per entry
                found = sorted((e.name, e.is_dir(follow_symlinks=False)) for e in entries)
            for name, is_dir in found:
                if not current.relative and (name.startswith(RESERVED_PREFIX) or name == _FSCK_DIR):
                    continue  # the runner's own backup dirs, the filesystem's fsck dir
                child = self._child(current, name)
                if child is None:
                    continue
                host = str(child.host_path)
                if host not in held:
                    yield child
                elif is_dir:
                    stack.append(child)

    def _child(self, parent: ResolvedPath, name: str) -> ResolvedPath | None:
        container_path = parent.container_path.rstrip("/") + "/" + name
        expected = os.path.join(str(parent.host_path), name)
        try:
            resolved = self._resolver.resolve(container_path)
        except RequestRejected:
            return None
        if str(resolved.host_path) != expected:
            return None  # another volume is mounted there in the container
        return resolved


def _removal(index: int, resolved: ResolvedPath) -> PlannedOp:
    return PlannedOp(
        index=index,
        kind=KIND_REMOVE,
        ordinal=-1,
        container_path=resolved.container_path,
        host_path=str(resolved.host_path),
        volume=str(resolved.binding.host_root),
        size=0,
        mode=0,
        mtime=0.0,
    )


def remove(op: PlannedOp, backup_dir: str, resolver: PathResolver) -> bool:
    """Move ``op``'s entry into the backup dir as ``<n>.bak``; False if it is gone.

    An entry already gone (e.g. moved aside with a directory the snapshot replaced by a
    file) needs nothing. Only the parent is checked to stay inside the volume: the
    entry itself may be a link pointing anywhere, and ``rename`` moves the link.

    Raises:
        RequestRejected: the parent resolves outside its volume.
        OSError: the rename failed (the commit is rolled back).
    """
    resolved = resolver.resolve(op.container_path)
    parent_cp = resolved.container_path.rsplit("/", 1)[0] or "/"
    parent = replace(resolved, container_path=parent_cp, host_path=resolved.host_path.parent)
    try:
        os.lstat(op.host_path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    resolver.check_write_target(parent)
    os.rename(op.host_path, marker(backup_dir, op.index, "bak"))  # never follows a link
    return True
