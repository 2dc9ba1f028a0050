"""ChunkedApplyTransaction: a chunked snapshot applied through the tar apply's journal.

The same transaction as ``ApplyTransaction`` (``sync/apply.py``), with the same journal,
markers, rollback, recovery and halt; only where the bytes come from and which files
are written differ:

- ``prepare()`` (the app runs): fetch the index blob (bounded: at most the manifest's
  size and 64 MiB), check its digest, parse it strictly within this consumer's limits
  (``MAX_MEMBERS``, ``MAX_UNPACKED_BYTES``), plan it (``sync/chunked_plan.py``: the same
  per-member checks as a tar, free space counted only for what will be written), then
  fetch only the chunks of the files to write, each chunk verified against its id
  before a byte of it is written: into a hidden directory on the file's own volume
  when it has room (``sync/volume_staging.py``), else into ``sync_state/staging/``;
- ``commit()`` (the app stopped) is the base class's: the journal header before the
  first write, any error rolled back. Each planned op runs in order; a file the volume
  already held is looked at once more and skipped if unchanged (the app may have
  written it since staging: then it is written after all, its chunks fetched now);
  a file staged in its volume and untouched since is renamed into place; every other
  file is copied from its staged copy (fetched now if the app changed it);
- ``finish()`` records what the commit left (``sync/applied_files.py``) before the app
  starts again, then empties both staging directories.

The rename-commit journals exactly as a write does (``n.new``/``n.bak`` markers before
the change), so a rollback or a kill -9 at any point is undone the same way.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ..errors import CarError, SnapshotInvalid
from ..fsutil import sync_filesystems
from ..stores.base import BlobStore
from . import constants as C
from .applied_files import AppliedFile, AppliedFiles, content_key
from .apply import ApplyTransaction, StepHook
from .chunked_plan import ChunkedPlan, FileJudge, plan_index
from .chunks.ids import chunk_ids_for
from .chunks.index import IndexEntry, SnapshotIndex
from .chunks.index_parse import IndexLimits, parse_index
from .chunks.reader import ChunkedSnapshotReader
from .crypto.framing import Sealer
from .journal import KIND_FILE, Journal, JournalHeader, PlannedOp
from .mirror import KIND_REMOVE
from .paths import PathResolver
from .preflight import ConsumerLimits, DigestMismatch, NoSpace, expected_sha256
from .records import SyncRecord
from .staging import SPACE_RESERVE_BYTES, StagedPlan
from .volume_staging import VolumeStaging, has_room


def clear_staging(state_dir: Path, log: logging.Logger) -> None:
    """Remove what a chunked apply fetched (also what a killed runner left); never raises."""
    staging = state_dir / C.STAGING_DIR
    try:
        shutil.rmtree(staging)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("could not empty the chunk staging directory: %s", exc)


class ChunkedApplyTransaction(ApplyTransaction):
    """One chunked snapshot: prepare while running, commit while stopped, or roll back."""

    def __init__(
        self,
        journal: Journal,
        resolver: PathResolver,
        log: logging.Logger,
        *,
        store: BlobStore,
        state_dir: Path,
        on_step: StepHook | None = None,
        mirror: bool = False,
        sealer: Sealer | None = None,
    ) -> None:
        super().__init__(journal, resolver, log, on_step=on_step, mirror=mirror, sealer=sealer)
        self._store = store
        self._state_dir = state_dir
        self._staging = state_dir / C.STAGING_DIR
        self._index: SnapshotIndex | None = None
        self._chunked: ChunkedPlan | None = None
        self._judge: FileJudge | None = None
        self._applied: dict[str, AppliedFile] = {}
        self._in_volume = VolumeStaging(log)
        self.files_written = 0
        self.files_kept = 0
        self.bytes_fetched = 0

    # --- while the app runs ------------------------------------------------------------
    def prepare(self, record: SyncRecord, limits: ConsumerLimits) -> StagedPlan:
        """Fetch and check the index, plan, and stage the chunks of the files to write.

        Raises:
            StoreError: the index cannot be fetched (``BlobNotFound``, ``BlobCorrupt``,
                ``StoreUnavailable``...).
            DigestMismatch: the index is not the one the record names.
            SnapshotInvalid: the index or an entry breaks a rule or a limit;
                ``PackMissing``/``ChunkCorrupt`` for a chunk that cannot be fetched.
            NoSpace: what will be written does not fit a volume, or the fetched files
                do not fit the staging directory.
        """
        clear_staging(self._state_dir, self._log)
        index = self._fetch_index(record, limits)
        facts = AppliedFiles.load(self._state_dir / C.APPLIED_FILES_FILE)
        ids = chunk_ids_for(index.chunk_hash, self._id_key)
        assert ids is not None  # the parser refused any other, and keyed ids unsealed
        self._judge = FileJudge(facts, ids, index.chunk_hash, self._resolver)
        plan = plan_index(
            index,
            record,
            self._resolver,
            limits,
            self._journal,
            self._judge,
            self._owner,
            self._log,
        )
        self._index, self._chunked, self._record = index, plan, record
        on_host = self._stage_in_volumes(index, plan)
        self._check_staging_space(sum(plan.fetch_ops[p].size for p in on_host))
        stats = ChunkedSnapshotReader(self._store, sealer=self._sealer).extract(
            index, self._staging, wanted=lambda e: e.path in on_host
        )
        self.bytes_fetched += stats.bytes_fetched
        self._plan = StagedPlan(
            archive=self._staging,
            archive_format=C.ARCHIVE_FORMAT_CHUNKED,
            ops=plan.ops,
            members=plan.members,
            unpacked_bytes=plan.unpacked_bytes,
            skipped=0,
            volumes=plan.volumes,
            extracted_paths=tuple(record.manifest.archive_paths),
        )
        return self._plan

    def _stage_in_volumes(self, index: SnapshotIndex, plan: ChunkedPlan) -> set[str]:
        """Fetch the files to write into their own volume where it has room (one
        ``rename`` each at the commit, ``sync/volume_staging.py``); the paths left for
        the host staging directory are returned.

        Raises:
            StoreError, SnapshotInvalid: as ``ChunkedSnapshotReader.extract_files``.
        """
        by_volume: dict[str, list[str]] = {}
        for path, op in plan.fetch_ops.items():
            by_volume.setdefault(op.volume, []).append(path)
        on_host: set[str] = set()
        targets: dict[str, Path] = {}
        for volume, paths in by_volume.items():
            folder = None
            if has_room(volume, (plan.fetch_ops[p].size for p in paths)):
                try:
                    folder = self._in_volume.make_dir(volume)
                except OSError as exc:
                    self._log.warning("cannot stage in volume %s: %s", volume, exc)
            if folder is None:
                on_host.update(paths)
                continue
            targets.update((p, folder / str(plan.fetch_ops[p].index)) for p in paths)
        if not targets:
            return on_host
        try:
            stats = ChunkedSnapshotReader(self._store, sealer=self._sealer).extract_files(
                index, targets
            )
            for path, target in targets.items():
                op = plan.fetch_ops[path]
                assert op.mtime_ns is not None  # chunked ops carry the entry's mtime_ns
                self._in_volume.add(op.index, target, self._owner(op.volume), op.mode, op.mtime_ns)
            # durable now, while the app runs: the commit's syncfs has little left to do
            sync_filesystems(self._in_volume.volume_dirs())
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            self._log.warning("a volume filled up while staging (%s); staging on the host", exc)
            self._in_volume.clear()
            return set(plan.fetch)
        self.bytes_fetched += stats.bytes_fetched
        return on_host

    @property
    def _id_key(self) -> bytes | None:
        return self._sealer.keys.chunk_id if self._sealer is not None else None

    def _fetch_index(self, record: SyncRecord, limits: ConsumerLimits) -> SnapshotIndex:
        manifest = record.manifest
        index_limits = IndexLimits(
            max_entries=limits.max_members, max_total_bytes=limits.max_unpacked_bytes
        )
        path = self._store.get(
            record.cid,
            sha256=manifest.archive_sha256,
            max_bytes=min(manifest.archive_size_bytes, index_limits.max_index_bytes),
        )
        blob = path.read_bytes()
        digest = hashlib.sha256(blob).hexdigest()
        if digest != expected_sha256(record):
            raise DigestMismatch(
                f"snapshot index sha256 {digest} does not match {expected_sha256(record)}",
                stage=C.STAGE_R1FS_DOWNLOAD,
            )
        return parse_index(blob, index_limits, self._sealer)

    def _check_staging_space(self, needed: int) -> None:
        self._staging.mkdir(parents=True, exist_ok=True)
        st = os.statvfs(self._staging)
        free = st.f_bavail * st.f_frsize
        if needed + SPACE_RESERVE_BYTES > free:
            raise NoSpace(
                f"the runner's staging directory has {free} free bytes; the changed files "
                f"need {needed}",
                stage=C.STAGE_EXTRACT,
                hint=f"free space on the host under {self._staging}",
            )

    # --- while the app is stopped -------------------------------------------------------
    def _run(self, header: JournalHeader, plan: StagedPlan, sha256: str) -> None:
        for backup_dir in header.backup_dirs.values():
            os.mkdir(backup_dir, 0o700)
        for op in self._journal.ops():
            backup_dir = header.backup_dirs[op.volume]
            if op.kind == KIND_REMOVE:  # mirror mode, after every entry
                self._remove_op(op, backup_dir)
            elif op.kind == KIND_FILE:
                self._file_op(op, backup_dir)
            else:
                self._apply_op(op, backup_dir, None)
            if self._on_step is not None:
                self._on_step(op.index)
        self._set_dir_mtimes()

    def _file_op(self, op: PlannedOp, backup_dir: str) -> None:
        assert self._index is not None and self._chunked is not None and self._judge is not None
        entry = self._index.entries[op.ordinal]
        key = content_key(entry, self._index.chunk_hash)
        held = self._chunked.held.get(op.index)
        st = self._judge.still_held(entry, op.host_path, held) if held is not None else None
        if st is None:
            staged = self._in_volume.take(op.index)
            if staged is not None:
                self._apply_op(op, backup_dir, None, staged)
            else:
                with self._content(entry) as data:
                    self._apply_op(op, backup_dir, data)
            st = os.lstat(op.host_path)
            self.files_written += 1
        else:
            self.files_kept += 1
        self._applied[op.host_path] = AppliedFile.of(st, key, entry.mtime_ns)

    @contextlib.contextmanager
    def _content(self, entry: IndexEntry) -> Iterator[IO[bytes]]:
        """The staged copy of ``entry`` (fetched now if the app changed a held file)."""
        if entry.size == 0:
            yield io.BytesIO(b"")
            return
        path = self._staging / entry.path
        if not os.path.lexists(path):
            assert self._index is not None
            self._log.info("%s changed since staging; fetching it now", "/" + entry.path)
            ChunkedSnapshotReader(self._store, sealer=self._sealer).extract(
                self._index, self._staging, wanted=lambda e: e.path == entry.path
            )
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as handle:
            if os.fstat(fd).st_size != entry.size:
                raise SnapshotInvalid(
                    f"staged copy of {'/' + entry.path!r} is not the snapshot's",
                    stage=C.STAGE_EXTRACT,
                )
            yield handle

    # --- afterwards ----------------------------------------------------------------------
    def finish(self) -> bool:
        """Remove the backups, record what the volume now holds, empty the staging dir."""
        ok = super().finish()
        if self._record is not None and self._applied:
            facts = AppliedFiles(self._record.cid, time.time_ns(), self._applied)
            try:
                facts.save(self._state_dir / C.APPLIED_FILES_FILE)
            except (OSError, CarError) as exc:  # the next apply compares files instead
                self._log.warning("applied-file facts not saved: %s", exc)
        clear_staging(self._state_dir, self._log)
        self._in_volume.clear()
        self._log.info(
            "chunked apply of %s: %d file(s) written, %d already in place, %d bytes fetched",
            self._record.cid if self._record else "?",
            self.files_written,
            self.files_kept,
            self.bytes_fetched,
        )
        return ok

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            clear_staging(self._state_dir, self._log)
            self._in_volume.clear()
