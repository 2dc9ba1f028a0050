"""ChunkedSnapshotPublisher: the provider with ``SYNC.ARCHIVE_FORMAT = "chunked"``.

The outline is ``SnapshotPublisher``'s (claim -> validate -> stop -> capture -> restart
-> upload -> publish -> history -> response -> retire); what differs is the capture,
the upload and what is cleaned up afterwards:

- before the stop, while the app runs: the previous index is fetched from the last
  published snapshot of this provider (its sent history) with the provider's facts
  about it (``sync/chunks/facts.py``). Missing, unreadable, retired or of another
  format, or with a pack gone from the store (``sync/chunked_reuse.py``), it is None
  and the capture is a full one, never a wrong one;
- with the app stopped (or while it runs, for ``provider_capture: "online"``: the
  volumes are read from the host either way): ``ChunkedSnapshotWriter`` walks the
  request's paths, resolved again as for a tar archive and refusing links and special
  files as the tar builder does, re-reading only files whose size, mtime, ctime or
  inode changed, into a staging directory in ``output/``; then the app starts again;
- upload: only the new packs, then the index (``upload_staged``), so the store never
  holds an index whose packs are missing;
- the record's ``cid`` is the index's; the manifest says ``archive_format: "chunked"``,
  ``archive_sha256`` is the index blob's digest, ``archive_size_bytes`` what a consumer
  holding nothing would fetch (the index plus every distinct chunk payload it
  references), ``members`` its entries and ``unpacked_bytes`` its files' bytes;
- after the commit point: the facts are saved for the next capture, and retirement
  (``sync/chunked_retention.py``) deletes superseded indexes and the packs no kept
  index references;
- a publish that fails after the upload deletes its index and, when they can only be
  its own, its new packs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import StoreUnavailable, SyncError
from . import constants as C
from .archive import ArchiveInfo
from .chunked_retention import (
    OWN_INDEX_LIMITS,
    delete_packs,
    is_chunked,
    newest_cids,
    read_index,
)
from .chunked_reuse import missing_packs
from .chunks.facts import SourceFacts
from .chunks.index import ChunkRef, SnapshotIndex, known_chunks
from .chunks.staged import PreviousSnapshot, StagedSnapshot, fetch_previous, upload_staged
from .chunks.writer import ChunkedSnapshotWriter
from .history import HistoryEntry
from .provider import PublishOutcome, SnapshotPublisher, _Run
from .records import SyncRecord, SyncRequest


class ChunkedSnapshotPublisher(SnapshotPublisher):
    """Publishes chunked snapshots; one capture in flight at a time, like its base."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._staged: StagedSnapshot | None = None
        # True when the new packs of the capture in hand hold only chunks no snapshot the
        # registry or a kept entry names has, so a failed publish may delete them.
        self._packs_disposable = False

    @property
    def facts_path(self) -> Path:
        return self.config.state_dir / C.CHUNK_FACTS_FILE

    # --- capture ------------------------------------------------------------------------
    def _capture(self, run: _Run) -> ArchiveInfo:
        started = self._monotonic()
        previous, known = self._starting_point()
        writer = ChunkedSnapshotWriter(
            run.archive, level=self.config.compression_level, sealer=self.config.sealer
        )

        def build(release: Callable[[], None] | None = None) -> StagedSnapshot:
            return self._write(writer, run.request, previous, known, release)

        if run.request.provider_capture == C.CAPTURE_ONLINE:
            staged, downtime = build(), 0.0  # read from the host while the app runs
        else:  # the app restarts once every file is read (packs hashed after it)
            staged, downtime = self.capture.stopped_until_read(build)
        run.durations["archive"] = self._monotonic() - started
        run.downtime = downtime
        self._staged = staged
        info = _archive_info(staged)
        limit = self.config.max_archive_bytes
        if limit is not None and info.size_bytes > limit:
            raise SyncError(
                f"snapshot is {info.size_bytes} bytes, more than MAX_ARCHIVE_BYTES ({limit})",
                stage=C.STAGE_ARCHIVE_BUILD,
            )
        stats = staged.stats
        self._log.info(
            "chunked capture %s: %d files (%d re-read, %d unchanged), %d new chunks, "
            "%d new pack bytes, %.2fs",
            staged.index_cid,
            stats.files,
            stats.files_read,
            stats.files_reused,
            stats.chunks_new,
            stats.stored_bytes_new,
            stats.seconds,
        )
        return info

    def _write(
        self,
        writer: ChunkedSnapshotWriter,
        request: SyncRequest,
        previous: PreviousSnapshot | None,
        known: dict[str, ChunkRef],
        release: Callable[[], None] | None = None,
    ) -> StagedSnapshot:
        sources = self.capture.sources(request)
        try:
            return writer.write(sources, previous, known, on_read_done=release)
        except OSError as exc:
            self._log.error("writing the chunked snapshot failed: %s", exc)
            raise SyncError(
                f"the snapshot could not be written ({exc.strerror})", stage=C.STAGE_ARCHIVE_BUILD
            ) from exc

    def _starting_point(self) -> tuple[PreviousSnapshot | None, dict[str, ChunkRef]]:
        """The previous snapshot and the chunks of the other kept ones (app running).

        Raises:
            SyncError: stage ``r1fs_upload``; the store is unreachable (the upload
                would fail too, so nothing is captured and the app is not stopped).
        """
        self._packs_disposable = False
        try:
            entries = self.targets.history.entries()
        except Exception as exc:  # unknown history: a full capture is always correct
            self._log.warning("sent history unreadable (%s); full capture", exc)
            return None, {}
        latest = entries[-1] if entries else None
        # A CID published while the history was unwritable: the registry may name it.
        unrecorded = bool(self._unrecorded.cids)
        try:
            previous = None if unrecorded else self._previous(latest)
            known = self._known(entries, newest_cids(entries, self.config.keep_snapshots - 1))
            reusable = self._packs_present(previous, known)
            if not reusable:  # full; its new packs may equal surviving ones: not disposable
                previous, known = None, {}
        except StoreUnavailable as exc:
            raise SyncError(
                "the blob store is unreachable; nothing was captured", stage=C.STAGE_R1FS_UPLOAD
            ) from exc
        live_has_packs = latest is not None and is_chunked(latest)
        self._packs_disposable = (
            reusable
            and not unrecorded
            and known is not None
            and (previous is not None or not live_has_packs)
        )
        return previous, known or {}

    def _packs_present(
        self, previous: PreviousSnapshot | None, known: dict[str, ChunkRef] | None
    ) -> bool:
        """True if every pack the capture could reuse is still in the store.

        Raises:
            StoreUnavailable: the store could not be asked.
        """
        packs = previous.index.packs() if previous is not None else []
        packs += [ref.pack for ref in (known or {}).values()]
        missing = missing_packs(self.targets.store, packs)
        if missing:
            self._log.warning(
                "%d pack(s) of the previous snapshot missing from the blob store (%s); "
                "full capture",
                len(missing),
                ", ".join(missing[:5]),
            )
        return not missing

    def _previous(self, latest: HistoryEntry | None) -> PreviousSnapshot | None:
        if latest is None or not is_chunked(latest):
            return None
        if (latest.data.get("deletion") or {}).get("deleted_at") is not None:
            return None  # retirement touched it: its packs may be gone
        facts = SourceFacts.load(self.facts_path, index_cid=latest.cid)
        return fetch_previous(
            self.targets.store, latest.cid, facts, OWN_INDEX_LIMITS, self.config.sealer
        )

    def _known(self, entries: list[HistoryEntry], cids: list[str]) -> dict[str, ChunkRef] | None:
        """Chunks of the other kept chunked snapshots; None if one of them is unreadable."""
        chunked = {e.cid for e in entries if is_chunked(e)}
        indexes: list[SnapshotIndex] = []
        for cid in cids:
            if cid in chunked:
                try:
                    indexes.append(read_index(self.targets.store, cid, sealer=self.config.sealer))
                except StoreUnavailable:
                    raise
                except Exception as exc:
                    self._log.warning("kept snapshot %s unreadable (%s)", cid, exc)
                    return None
        return known_chunks(indexes)

    # --- upload -------------------------------------------------------------------------
    def _verify(self, run: _Run, info: ArchiveInfo) -> None:
        """Nothing to re-read: ``upload_staged`` checks each blob against its name."""

    def _upload(self, run: _Run, info: ArchiveInfo) -> str:
        run.stage = C.STAGE_R1FS_UPLOAD
        staged = self._staged
        assert staged is not None  # _capture set it
        started = self._monotonic()
        try:
            upload_staged(staged, self.targets.store)
        except Exception as exc:
            self._log.error("upload to %s failed: %s", self.targets.store.describe(), exc)
            self._delete_blob(staged.index_cid)
            raise SyncError(
                f"upload to the blob store failed ({type(exc).__name__})", stage=run.stage
            ) from exc
        run.durations["upload"] = self._monotonic() - started
        self._log.info(
            "uploaded %d new pack(s) and the index: %d bytes",
            len(staged.pack_paths),
            staged.stats.stored_bytes_new + staged.index_path.stat().st_size,
        )
        return staged.index_cid

    def _delete_blob(self, cid: str) -> None:
        """A publish that failed after its upload: its index, and its own new packs."""
        super()._delete_blob(cid)
        staged = self._staged
        if staged is None or staged.index_cid != cid:
            return
        if self._packs_disposable:
            delete_packs(self.targets.store, staged.pack_cids, self._log)
        elif staged.pack_cids:
            self._log.warning(
                "kept %d new pack(s) of unpublished %s: they may be shared with a "
                "snapshot this provider cannot read",
                len(staged.pack_cids),
                cid,
            )

    # --- after the commit point -------------------------------------------------------------
    def _finish(self, run: _Run, record: SyncRecord, ack: bool) -> PublishOutcome:
        staged = self._staged
        if staged is not None and staged.index_cid == record.cid:
            try:
                self.facts_path.parent.mkdir(parents=True, exist_ok=True)
                staged.facts.save(self.facts_path)
            except OSError as exc:  # the next capture re-reads every file; still correct
                self._log.warning("chunk source facts not saved: %s", exc)
        return super()._finish(run, record, ack)

    def _retire(self, keep_cid: str, now: float, newest_index: SnapshotIndex | None = None) -> None:
        staged = self._staged
        index = staged.index if staged is not None and staged.index_cid == keep_cid else None
        if index is None:
            try:
                index = read_index(self.targets.store, keep_cid, sealer=self.config.sealer)
            except Exception as exc:  # retire nothing chunked rather than guess its packs
                self._log.warning("retirement postponed: index %s unreadable (%s)", keep_cid, exc)
                return
        super()._retire(keep_cid, now, index)


def _archive_info(staged: StagedSnapshot) -> ArchiveInfo:
    """The manifest's numbers for a staged chunked snapshot (see the module docstring)."""
    blob = staged.index_path.read_bytes()
    payloads = {(c.pack, c.offset): c.length for e in staged.index.files() for c in e.chunks}
    return ArchiveInfo(
        sha256=hashlib.sha256(blob).hexdigest(),
        size_bytes=len(blob) + sum(payloads.values()),
        members=len(staged.index.entries),
        unpacked_bytes=staged.index.unpacked_bytes(),
    )
