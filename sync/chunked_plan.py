"""Planning a chunked apply: which files the volume already holds, and the journaled plan.

The result must be the volume a full apply would leave (overlay rule, docs/FORMAT.md):
every snapshot file with the snapshot's bytes, its mode (setuid/setgid/sticky stripped,
at least 0644), the volume root's owner and the snapshot's mtime. A file that already
looks exactly like that needs no write. ``FileJudge`` decides it per file:

- the metadata must already be the applied one (regular file, one link, size, mode,
  owner, mtime): a mismatch means "write";
- then the content: known from the last apply's facts when the stat is unchanged and
  not racy (``sync/applied_files.py``), otherwise read and compared chunk by chunk with
  the snapshot's chunk ids (local reads, no fetch);
- what the judge saw is ``Held``: the stat on which the decision rests. At the commit,
  with the app stopped, ``still_held`` looks again: a changed stat means the app wrote
  the file meanwhile and it is written after all; a racy one is compared again.

``plan_index`` turns an index into the same journaled plan a tar archive gives
(``MemberValidator``: paths inside the manifest's archive paths, mapped onto this
consumer's volumes, reserved names, limits, implicit parents), keeps the files held,
and counts free space only for what will be written.
"""

from __future__ import annotations

import logging
import os
import stat
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ..errors import RequestRejected
from .applied_files import RACY_NS, AppliedFiles, content_key
from .apply import file_mode
from .chunks.ids import ChunkIds
from .chunks.index import IndexEntry, SnapshotIndex
from .journal import KIND_FILE, KIND_PARENT, Journal, PlannedOp
from .paths import PathResolver
from .preflight import ConsumerLimits, MemberValidator
from .records import SyncRecord
from .staging import SpaceBudget, _check_manifest_totals

_READ_BYTES = 1024 * 1024

StatKey = tuple[int, int, int, int, int, int, int, int]


def stat_key(st: os.stat_result) -> StatKey:
    """Everything about a file a change would alter (ctime covers chmod/chown/writes)."""
    return (
        st.st_size,
        st.st_mtime_ns,
        st.st_ctime_ns,
        st.st_ino,
        st.st_mode,
        st.st_uid,
        st.st_gid,
        st.st_nlink,
    )


@dataclass(frozen=True, slots=True)
class Held:
    """The volume holds a file's snapshot content; ``key`` is the stat that showed it."""

    key: StatKey
    trusted: bool  # False: racy, compare the content again at the commit


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:  # missing, or a parent that is not a directory
        return None


class FileJudge:
    """Decides whether the volume already holds a snapshot file (see the module doc)."""

    def __init__(
        self, facts: AppliedFiles | None, ids: ChunkIds, chunk_hash: str, resolver: PathResolver
    ) -> None:
        self._facts = facts
        self._ids = ids
        self._chunk_hash = chunk_hash
        self._resolver = resolver
        self.compared = 0  # files read and compared (no facts to trust)

    def held(self, entry: IndexEntry, host: str, owner: tuple[int, int]) -> Held | None:
        """At staging (the app runs): the stat on which "already there" rests, or None."""
        started = time.time_ns()
        st = _lstat(host)
        if st is None or not self._looks_applied(entry, host, st, owner):
            return None
        fact = self._facts.trusted(host) if self._facts is not None else None
        if fact is not None and fact.matches(st):
            if fact.content == content_key(entry, self._chunk_hash):
                return Held(stat_key(st), trusted=True)
            return None
        if not self._readable_inside(entry, host) or not self._same_content(entry, host, st):
            return None
        return Held(stat_key(st), trusted=st.st_ctime_ns < started - RACY_NS)

    def still_held(self, entry: IndexEntry, host: str, held: Held) -> os.stat_result | None:
        """At the commit (the app stopped): the file's stat if it is still held, else None."""
        st = _lstat(host)
        if st is None or stat_key(st) != held.key:
            return None
        if held.trusted or self._same_content(entry, host, st):
            return st
        return None

    def _looks_applied(
        self, entry: IndexEntry, host: str, st: os.stat_result, owner: tuple[int, int]
    ) -> bool:
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_size != entry.size:
            return False
        if stat.S_IMODE(st.st_mode) != file_mode(entry.mode) or (st.st_uid, st.st_gid) != owner:
            return False
        if st.st_mtime_ns == entry.mtime_ns:
            return True
        # The volume may keep mtimes rounded (whole seconds): as the last apply left it.
        fact = self._facts.files.get(host) if self._facts is not None else None
        return fact is not None and (fact.entry_mtime_ns, fact.mtime_ns) == (
            entry.mtime_ns,
            st.st_mtime_ns,
        )

    def _readable_inside(self, entry: IndexEntry, host: str) -> bool:
        """Never read through a link the app planted to a file outside its volume."""
        try:
            self._resolver.check_write_target(self._resolver.resolve("/" + entry.path))
        except RequestRejected:
            return False
        return True

    def _same_content(self, entry: IndexEntry, host: str, st: os.stat_result) -> bool:
        """Read the file and compare it chunk by chunk with the snapshot's chunk ids."""
        self.compared += 1
        try:
            fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return False
        with os.fdopen(fd, "rb", buffering=0) as handle:
            try:
                now = os.fstat(fd)
                if (now.st_ino, now.st_dev, now.st_size) != (st.st_ino, st.st_dev, st.st_size):
                    return False
                for ref in entry.chunks:
                    data = _read_exactly(handle.read, ref.raw_length)
                    if data is None or self._ids(data) != ref.digest:
                        return False
                return handle.read(1) == b""
            except OSError:
                return False


def _read_exactly(read: Callable[[int], bytes | None], size: int) -> bytes | None:
    parts: list[bytes] = []
    left = size
    while left:
        data = read(min(left, _READ_BYTES))
        if not data:
            return None
        parts.append(data)
        left -= len(data)
    return b"".join(parts)


@dataclass(slots=True)
class ChunkedPlan:
    """What planning decided: ops journaled, files held (by op index), files to fetch."""

    ops: int = 0
    members: int = 0
    unpacked_bytes: int = 0
    volumes: tuple[str, ...] = ()
    held: dict[int, Held] = field(default_factory=dict)
    fetch: set[str] = field(default_factory=set)  # index paths
    fetch_ops: dict[str, PlannedOp] = field(default_factory=dict)  # index path -> its op
    fetch_bytes: int = 0


def _member(entry: IndexEntry) -> tarfile.TarInfo:
    """The entry as the tar member it stands for, so one validator checks both formats."""
    info = tarfile.TarInfo(entry.path)
    info.type = tarfile.REGTYPE if entry.is_file else tarfile.DIRTYPE
    info.size = entry.size
    info.mode = entry.mode
    info.mtime = entry.mtime_ns / 1e9
    return info


def plan_index(
    index: SnapshotIndex,
    record: SyncRecord,
    resolver: PathResolver,
    limits: ConsumerLimits,
    journal: Journal,
    judge: FileJudge,
    owner: Callable[[str], tuple[int, int]],
    log: logging.Logger,
) -> ChunkedPlan:
    """Validate every entry, judge every file and journal the plan (no volume writes).

    Raises:
        SnapshotInvalid: (stage ``extract``) an entry breaks a rule or a limit, or the
            totals differ from the manifest's.
        NoSpace: what will be written does not fit a target volume.
    """
    manifest = record.manifest
    validator = MemberValidator(manifest.archive_paths, resolver, limits, log)
    budget = SpaceBudget()
    plan = ChunkedPlan()
    volumes: dict[str, None] = {}  # every volume an op may touch needs a backup dir
    with journal.plan_writer() as out:
        for ordinal, entry in enumerate(index.entries):
            for op in validator.check(ordinal, _member(entry)):
                volumes[op.volume] = None
                if op.kind != KIND_PARENT:
                    op = replace(op, mtime_ns=entry.mtime_ns)
                held = None
                if op.kind == KIND_FILE:
                    held = judge.held(entry, op.host_path, owner(op.volume))
                if held is not None:
                    plan.held[op.index] = held
                else:
                    budget.add(op)
                    if op.kind == KIND_FILE and entry.size:
                        plan.fetch.add(entry.path)
                        plan.fetch_ops[entry.path] = op
                        plan.fetch_bytes += entry.size
                out.write(op.to_line())
                plan.ops += 1
        _check_manifest_totals(manifest, validator.members, validator.unpacked_bytes)
    plan.members, plan.unpacked_bytes = validator.members, validator.unpacked_bytes
    plan.volumes = tuple(volumes)
    return plan
