"""ApplyTransaction: stage(), commit(), rollback() of one snapshot (README, "Consumer").

- ``stage()`` (app running): validate every member and write the plan to the journal
  (``sync/staging.py``); nothing in a volume is touched.
- ``commit()`` (app stopped): write the journal header (fsync) before the first
  write, then apply the plan in order with overlay semantics: a snapshot entry
  replaces the entry at its path, everything else is kept (in mirror mode,
  ``sync/mirror.py``, what the snapshot lacks is then removed, journaled the same way).
  A replaced entry is first *renamed* into the per-apply backup dir
  ``<volume root>/.car-sync-<apply id>/`` (same filesystem, so it is a rename, not a
  copy); new entries and changed directory metadata get markers there
  (``sync/rollback.py``). Any error rolls back in reverse.
- ``finish()`` (after the caller recorded the apply): removes the backup dirs and the
  journal, so no runner file remains in the app volume. The backup dir exists only
  while the app is stopped; ``recover()`` removes it before any start after a crash.

Every write re-checks ``realpath`` containment right before it happens
(``PathResolver.check_write_target``): the parent is checked before an old entry is
moved away, and the target after. A symlink in the volume is therefore moved aside
(``rename`` never follows it), never written through, and a symlinked parent that
leads outside the volume fails the commit, which is then rolled back.

Restored entries belong to the volume root's owner; modes are the archive's with
setuid/setgid/sticky stripped and at least 0644 (files) / 0755 (dirs); mtimes are
the archive's (directories last, after their contents were written).
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import IO

from ..errors import ApplyFailed, CarError, SnapshotInvalid
from ..fsutil import sync_filesystems
from . import constants as C
from .archive_read import DECODE_ERRORS, iter_members, open_archive, read_member
from .crypto.framing import Sealer
from .journal import (
    KIND_DIR,
    KIND_FILE,
    STATE_COMMITTED,
    STATE_COMMITTING,
    Journal,
    JournalHeader,
    PlannedOp,
)
from .mirror import KIND_REMOVE, RemovalPlanner, remove
from .paths import PathResolver, ResolvedPath
from .preflight import RESERVED_PREFIX, ConsumerLimits, expected_sha256
from .records import SyncRecord
from .rollback import finish, marker, rollback, save_meta, touch
from .staging import StagedPlan, stage_archive

_COPY_CHUNK = 1024 * 1024
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

# Called with each operation's index once it is done. Tests use it to pause or kill a
# commit halfway; production code passes None.
StepHook = Callable[[int], None]


def file_mode(mode: int) -> int:
    """Archive mode without setuid/setgid/sticky, at least rw-r--r--."""
    return (mode & 0o777) | 0o644


def dir_mode(mode: int) -> int:
    """Archive mode without setuid/setgid/sticky, at least rwxr-xr-x."""
    return (mode & 0o777) | 0o755


class ApplyTransaction:
    """One snapshot apply: stage while running, commit while stopped, or roll back."""

    def __init__(
        self,
        journal: Journal,
        resolver: PathResolver,
        log: logging.Logger,
        *,
        on_step: StepHook | None = None,
        mirror: bool = False,
        sealer: Sealer | None = None,
    ) -> None:
        self._journal = journal
        self._sealer = sealer  # SYNC.ENCRYPTION_KEY_FILE: opens encrypted snapshots
        self._resolver = resolver
        self._log = log
        self._on_step = on_step
        self._mirror = mirror  # SYNC.APPLY_MODE "mirror": also remove what the snapshot lacks
        self.removed = 0
        self._plan: StagedPlan | None = None
        self._record: SyncRecord | None = None
        self._header: JournalHeader | None = None
        self._owners: dict[str, tuple[int, int]] = {}

    @property
    def plan(self) -> StagedPlan | None:
        return self._plan

    def stage(self, archive: Path, record: SyncRecord, limits: ConsumerLimits) -> StagedPlan:
        """Validate the archive's members and journal the plan (no volume writes).

        Raises:
            SnapshotInvalid: a member or limit problem (``NoSpace`` for free space).
        """
        self._plan = stage_archive(
            archive, record, self._resolver, limits, self._journal, self._log, self._opener(record)
        )
        self._record = record
        return self._plan

    def _opener(self, record: SyncRecord | None) -> Sealer | None:
        """The sealer when ``record`` is encrypted (its archive is sealed)."""
        encrypted = record is not None and record.manifest.encryption == C.ENCRYPTION_SEALED
        return self._sealer if encrypted else None

    def commit(self) -> None:
        """Apply the staged plan; call only after a confirmed stop.

        Raises:
            ApplyFailed: the commit failed; ``rolled_back`` says whether the volume
                was restored (False means halt).
        """
        if self._plan is None or self._record is None:
            raise ApplyFailed("commit() before stage()", rolled_back=True)
        apply_id = secrets.token_hex(6)
        header = JournalHeader(
            apply_id=apply_id,
            cid=self._record.cid,
            version=self._record.version,
            state=STATE_COMMITTING,
            ops=self._plan.ops,
            manifest_digest=self._record.manifest.digest(),
            backup_dirs={
                v: os.path.join(v, f"{RESERVED_PREFIX}{apply_id}") for v in self._plan.volumes
            },
        )
        self._header = header
        try:
            if self._mirror:  # removals journaled too, before the first write
                header = self._header = self._with_removals(header)
            self._journal.write_header(header)  # before the first write
            self._run(header, self._plan, expected_sha256(self._record))
            # file data durable before the journal says "committed"
            sync_filesystems(sorted(header.backup_dirs))
            self._journal.write_header(replace(header, state=STATE_COMMITTED))
        except Exception as exc:  # any error, expected or a bug: roll back (issue 9)
            # Not BaseException: a KeyboardInterrupt/SystemExit is the process dying, and
            # the journal is then resolved by recover() at the next start.
            self._fail(header, exc)
        self._header = replace(header, state=STATE_COMMITTED)
        if self.removed:
            self._log.info("mirror: removed %d entries the snapshot does not hold", self.removed)

    def finish(self) -> bool:
        """Remove the backup dirs and the journal after a successful commit."""
        if self._header is None:
            return True
        return finish(self._journal, self._header, self._log)

    def rollback(self) -> None:
        """Undo whatever the commit did so far (idempotent).

        Raises:
            ApplyFailed: (``rolled_back=False``) consistency could not be proven.
        """
        if self._header is not None:
            rollback(self._journal, self._header, self._log)
        elif self._journal.has_plan():
            self._journal.remove()

    # --- internals -------------------------------------------------------------------
    def _with_removals(self, header: JournalHeader) -> JournalHeader:
        """Plan mirror mode's removals (the app is stopped) and append them to the plan."""
        assert self._record is not None
        removals = RemovalPlanner(self._journal, self._resolver, self._log).plan(
            tuple(self._record.manifest.archive_paths), header.ops
        )
        self._journal.append_ops(removals)
        dirs = dict(header.backup_dirs)
        for op in removals:
            dirs.setdefault(
                op.volume, os.path.join(op.volume, f"{RESERVED_PREFIX}{header.apply_id}")
            )
        return replace(header, ops=header.ops + len(removals), backup_dirs=dirs)

    def _remove_op(self, op: PlannedOp, backup_dir: str) -> None:
        if remove(op, backup_dir, self._resolver):
            self.removed += 1

    def _fail(self, header: JournalHeader, exc: Exception) -> None:
        reason = _describe(exc)
        if isinstance(exc, (OSError, CarError, *DECODE_ERRORS)):
            self._log.error("commit of %s failed: %s; rolling back", header.cid, reason)
        else:  # not an error the commit expects: keep the traceback for the bug report
            self._log.exception("commit of %s failed unexpectedly; rolling back", header.cid)
        self.rollback()  # raises ApplyFailed(rolled_back=False) if it cannot prove anything
        stage = C.STAGE_EXTRACT if isinstance(exc, SnapshotInvalid) else C.STAGE_COMMIT
        raise ApplyFailed(
            f"commit failed and was rolled back: {reason}", stage=stage, rolled_back=True
        ) from exc

    def _run(self, header: JournalHeader, plan: StagedPlan, sha256: str) -> None:
        for backup_dir in header.backup_dirs.values():
            os.mkdir(backup_dir, 0o700)
        with open_archive(plan.archive, plan.archive_format, self._opener(self._record)) as (
            tar,
            reader,
        ):
            members = iter_members(tar)
            position = -1
            for op in self._journal.ops():
                data: IO[bytes] | None = None
                if op.kind == KIND_REMOVE:  # mirror mode, after every member
                    self._remove_op(op, header.backup_dirs[op.volume])
                elif op.kind == KIND_FILE:
                    position, member = _advance(members, position, op.ordinal)
                    _check_same(member, op)
                    data = read_member(tar, member)
                if op.kind != KIND_REMOVE:
                    self._apply_op(op, header.backup_dirs[op.volume], data)
                if self._on_step is not None:
                    self._on_step(op.index)
            for _ in members:  # read to the end so the digest covers every byte
                pass
            reader.drain()
            if reader.hexdigest() != sha256:
                raise SnapshotInvalid(
                    "archive changed since it was verified", stage=C.STAGE_EXTRACT
                )
        self._set_dir_mtimes()

    def _apply_op(
        self, op: PlannedOp, backup_dir: str, data: IO[bytes] | None, staged: str | None = None
    ) -> None:
        """Run one op; a file comes from ``data``, or is ``staged`` in its volume (renamed)."""
        resolved = self._resolver.resolve(op.container_path)
        if str(resolved.host_path) != op.host_path:
            raise SnapshotInvalid(f"{op.container_path!r} maps elsewhere than planned")
        self._check_parent(resolved)
        target = op.host_path
        st = _lstat(target)
        wants_dir = op.kind != KIND_FILE
        backed_up = False
        if st is not None and not (wants_dir and stat.S_ISDIR(st.st_mode)):
            os.rename(target, marker(backup_dir, op.index, "bak"))  # never follows a link
            st, backed_up = None, True
        self._resolver.check_write_target(resolved)
        uid, gid = self._owner(op.volume)
        if st is None:
            if not backed_up:
                touch(marker(backup_dir, op.index, "new"))
            if wants_dir:
                os.mkdir(target, 0o700)
                os.chown(target, uid, gid, follow_symlinks=False)
                os.chmod(target, dir_mode(op.mode))
            elif staged is not None:  # owner, mode and mtime were set when it was staged
                os.rename(staged, target)
            else:
                assert data is not None
                _write_file(target, data, op, uid, gid)
        else:
            save_meta(marker(backup_dir, op.index, "meta"), st)
            if op.kind == KIND_DIR:
                os.chown(target, uid, gid, follow_symlinks=False)
                os.chmod(target, dir_mode(op.mode))

    def _check_parent(self, resolved: ResolvedPath) -> None:
        if not resolved.relative:
            return
        parent_cp = resolved.container_path.rsplit("/", 1)[0] or "/"
        parent = replace(resolved, container_path=parent_cp, host_path=resolved.host_path.parent)
        self._resolver.check_write_target(parent)

    def _owner(self, volume: str) -> tuple[int, int]:
        if volume not in self._owners:
            st = os.lstat(volume)
            self._owners[volume] = (st.st_uid, st.st_gid)
        return self._owners[volume]

    def _set_dir_mtimes(self) -> None:
        for op in self._journal.ops():
            if op.kind == KIND_DIR:
                if op.mtime_ns is not None:
                    ns = (op.mtime_ns, op.mtime_ns)
                    os.utime(op.host_path, ns=ns, follow_symlinks=False)
                else:
                    os.utime(op.host_path, (op.mtime, op.mtime), follow_symlinks=False)


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _advance(
    members: Iterator[tarfile.TarInfo], position: int, ordinal: int
) -> tuple[int, tarfile.TarInfo]:
    for member in members:
        position += 1
        if position == ordinal:
            return position, member
    raise SnapshotInvalid("archive ended before a planned member", stage=C.STAGE_EXTRACT)


def _check_same(member: tarfile.TarInfo, op: PlannedOp) -> None:
    name = "/" + os.path.normpath(member.name).lstrip("/")
    if name != op.container_path or member.size != op.size:
        raise SnapshotInvalid(
            f"archive member {name!r} differs from the plan", stage=C.STAGE_EXTRACT
        )


def _write_file(target: str, data: IO[bytes], op: PlannedOp, uid: int, gid: int) -> None:
    fd = os.open(target, _CREATE_FLAGS, 0o600)
    with os.fdopen(fd, "wb", buffering=0) as out:
        shutil.copyfileobj(data, out, _COPY_CHUNK)
        os.fchown(out.fileno(), uid, gid)
        os.fchmod(out.fileno(), file_mode(op.mode))
        if op.mtime_ns is not None:
            os.utime(out.fileno(), ns=(op.mtime_ns, op.mtime_ns))
        else:
            os.utime(out.fileno(), (op.mtime, op.mtime))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        # errno text only: the host path in the exception must not reach app-visible files
        return f"{exc.strerror or type(exc).__name__} (errno {exc.errno})"
    if isinstance(exc, CarError):
        return str(exc)
    # An unexpected error: its type says more than a bare message (KeyError('x') -> 'x').
    return f"{type(exc).__name__}: {exc}"
