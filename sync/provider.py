"""SnapshotPublisher: one provider tick, from request.json to a published record (SPEC §7.1).

``publish_pending`` reads as the SPEC's outline: claim -> validate -> (offline) confirmed
stop -> build archive -> restart -> verify -> upload -> publish (commit point) -> history
-> response -> retire. Capturing (stop, build, restart as soon as the archive is
complete, before any network transfer) is ``SnapshotCapture``'s job. Every failure
is answered once through ``ControlDir.fail`` with its stage label; texts sent to the app
name container paths only (backend and OS details go to the log). The temp archive is
always removed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CarError, RequestRejected, SyncError
from ..registries.base import Registry
from ..stores.base import BlobStore
from ..stores.cid import sha256_file, sha256_from_cid
from . import constants as C
from .archive import ArchiveInfo
from .capture import ArchiveSettings, SnapshotCapture
from .container_control import ContainerControl
from .control_files import ClaimedRequest, ControlDir
from .history import HistoryLog
from .paths import PathResolver
from .records import Manifest, SyncRecord, SyncRequest
from .request import parse_request
from .retention import is_retired, retire_superseded

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PublisherConfig:
    """The provider's local settings (from ``SyncConfig`` plus the node identity)."""

    sync_key: str
    node_id: str
    work_dir: Path  # runner-private directory for the temp archive
    archive_format: str = C.ARCHIVE_FORMAT_ZST
    compression_level: int = C.DEFAULT_ZSTD_LEVEL
    allow_online: bool = False
    max_archive_bytes: int | None = C.DEFAULT_MAX_ARCHIVE_BYTES


@dataclass(frozen=True, slots=True)
class PublishTargets:
    """Where a snapshot goes: the blob store, the registry and the sent history."""

    store: BlobStore
    registry: Registry
    history: HistoryLog


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    """The answer given to the app, for the caller's log and status."""

    status: str  # "ok" or "error"
    response: dict[str, Any]
    stage: str | None = None
    cid: str | None = None


@dataclass(slots=True)
class _Run:
    """State of one publish in progress."""

    claimed: ClaimedRequest
    request: SyncRequest
    now: float
    archive: Path
    durations: dict[str, float] = field(default_factory=dict)
    downtime: float = 0.0
    stage: str = C.STAGE_ARCHIVE_BUILD


class SnapshotPublisher:
    """Publishes the app's snapshot requests (one at a time, one per tick)."""

    def __init__(
        self,
        config: PublisherConfig,
        control: ControlDir,
        resolver: PathResolver,
        containers: ContainerControl,
        targets: PublishTargets,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        log: logging.Logger = _log,
    ) -> None:
        self.config = config
        self.control = control
        self.resolver = resolver
        self.targets = targets
        self._monotonic = monotonic
        self._log = log
        settings = ArchiveSettings(
            config.archive_format, config.compression_level, config.max_archive_bytes
        )
        self.capture = SnapshotCapture(settings, containers, resolver, monotonic=monotonic, log=log)
        self._unrecorded: set[str] = set()  # published CIDs missing from the sent history

    def recover(self) -> None:
        """At start: re-queue an unfinished request (SPEC §5.5) and drop stale archives."""
        self._remove_stale_archives()
        try:
            self.control.recover_stale_processing()
        except CarError as exc:
            self._log.warning("volume-sync recovery skipped: %s", exc)

    def _remove_stale_archives(self) -> None:
        """Temp archives of a run that crashed mid-publish (its ``finally`` never ran).

        ``work_dir`` is runner-private and one runner owns an instance, so at start
        nothing else can be writing there.
        """
        for path in self.config.work_dir.glob("snapshot-*"):
            try:
                path.unlink()
            except OSError as exc:
                self._log.warning("could not remove stale archive %s: %s", path.name, exc)
            else:
                self._log.info("removed stale archive %s of an interrupted publish", path.name)

    # --- the outline --------------------------------------------------------------------
    def publish_pending(self, now: float) -> PublishOutcome | None:
        """Handle the pending request, if any.

        Args:
            now: wall-clock time of this tick; the record's version is ``int(now)``.

        Returns:
            None when nothing was pending, else what the app was told.
        """
        claimed = self._claim()
        if claimed is None:
            return None
        request = self._validate(claimed)
        if isinstance(request, PublishOutcome):
            return request
        archive = self.config.work_dir / f"snapshot-{time.time_ns()}.{self.config.archive_format}"
        run = _Run(claimed, request, now, archive)
        try:
            return self._publish(run)
        except SyncError as exc:
            return self._fail(claimed, exc.stage or run.stage, exc.message)
        except Exception:
            self._log.exception("volume-sync publish failed unexpectedly at %s", run.stage)
            return self._fail(claimed, run.stage, f"internal error during {run.stage}")
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(archive)

    def _publish(self, run: _Run) -> PublishOutcome:
        self.config.work_dir.mkdir(parents=True, exist_ok=True)
        info = self._capture(run)
        self._verify(run, info)
        cid = self._upload(run, info)
        record = self._record(run, info, cid)
        ack = self._commit(run, record)
        history_error = self._write_history(run, record, ack)
        response = self._success_response(run, record, history_error)
        self.control.succeed(response)
        self._log.info(
            "published snapshot %s (version %s): %d bytes, downtime %.2fs",
            cid,
            record.version,
            record.manifest.archive_size_bytes,
            run.downtime,
        )
        retire_superseded(
            self.targets.history,
            self.targets.store,
            cid,
            remote=True,
            local=True,
            now=run.now,
            log=self._log,
        )
        self._retire_unrecorded(keep=cid)
        return PublishOutcome("ok", {**response, "status": "ok"}, cid=cid)

    def _retire_unrecorded(self, keep: str) -> None:
        """Retire CIDs published while the sent history could not be written (§7.9).

        They have no history entry, so ``retire_superseded`` cannot find them; without
        this their blobs would stay in the store for good. Kept in memory: a runner
        restart in between forgets them (logged when they were published).
        """
        for cid in sorted(self._unrecorded - {keep}):
            try:
                self.targets.store.delete(cid, remote=True, local=True)
            except Exception as exc:
                self._log.warning("retirement of unrecorded %s failed, will retry: %s", cid, exc)
                continue
            self._unrecorded.discard(cid)
            self._log.info("retired %s (published while the history was unwritable)", cid)

    # --- claim and validate -----------------------------------------------------------------
    def _claim(self) -> ClaimedRequest | None:
        try:
            return self.control.claim()
        except CarError as exc:
            self._log.warning("volume-sync claim skipped: %s", exc)
            return None

    def _validate(self, claimed: ClaimedRequest) -> SyncRequest | PublishOutcome:
        if claimed.error is not None:
            return self._fail(claimed, C.STAGE_VALIDATION, claimed.error)
        try:
            request = parse_request(
                claimed.body, allow_online=self.config.allow_online, resolver=self.resolver
            )
        except RequestRejected as exc:
            return self._fail(claimed, C.STAGE_VALIDATION, exc.message)
        fields: dict[str, Any] = {"archive_paths": request.echo_paths}
        if request.request_id is not None:
            fields["request_id"] = request.request_id
        self.control.in_progress(**fields)
        return request

    def _fail(self, claimed: ClaimedRequest, stage: str, error: str) -> PublishOutcome:
        self._log.warning("volume-sync request failed at %s: %s", stage, error)
        self.control.fail_claimed(claimed, stage, error)
        response = {"status": "error", "stage": stage, "error": error}
        return PublishOutcome("error", response, stage=stage)

    # --- capture ----------------------------------------------------------------------------
    def _capture(self, run: _Run) -> ArchiveInfo:
        captured = self.capture.capture(run.request, run.archive)
        run.durations["archive"] = captured.seconds
        run.downtime = captured.downtime
        return captured.info

    def _verify(self, run: _Run, info: ArchiveInfo) -> None:
        run.stage = C.STAGE_ARCHIVE_BUILD
        if run.archive.stat().st_size != info.size_bytes or sha256_file(run.archive) != info.sha256:
            raise SyncError("the archive failed verification after writing", stage=run.stage)

    # --- upload and publish --------------------------------------------------------------------
    def _upload(self, run: _Run, info: ArchiveInfo) -> str:
        run.stage = C.STAGE_R1FS_UPLOAD
        started = self._monotonic()
        try:
            cid = self.targets.store.put(run.archive)
        except Exception as exc:
            self._log.error("upload to %s failed: %s", self.targets.store.describe(), exc)
            raise SyncError(
                f"upload to the blob store failed ({type(exc).__name__})", stage=run.stage
            ) from exc
        run.durations["upload"] = self._monotonic() - started
        expected = sha256_from_cid(cid)
        if expected is not None and expected != info.sha256:
            self._delete_blob(cid)
            raise SyncError("the blob store returned an id that does not match", stage=run.stage)
        return cid

    def _record(self, run: _Run, info: ArchiveInfo, cid: str) -> SyncRecord:
        request = run.request
        manifest = Manifest(
            archive_paths=request.archive_paths,
            archive_format=self.config.archive_format,
            archive_size_bytes=info.size_bytes,
            runtime=request.runtime,
            archive_sha256=info.sha256,
            unpacked_bytes=info.unpacked_bytes,
            members=info.members,
        )
        return SyncRecord(
            cid=cid,
            version=int(run.now),
            timestamp=run.now,
            node_id=self.config.node_id,
            manifest=manifest,
            metadata=request.metadata,
            runtime=request.runtime,
        )

    def _commit(self, run: _Run, record: SyncRecord) -> bool:
        """hset is the commit point (SPEC §7.4); returns whether it was acknowledged."""
        run.stage = C.STAGE_CHAINSTORE_PUBLISH
        registry = self.targets.registry
        started = self._monotonic()
        ack = False
        try:
            ack = registry.hset(C.CHAINSTORE_HKEY, self.config.sync_key, record.to_json())
        except Exception as exc:
            self._log.warning("registry hset failed (%s); re-reading once", exc)
        if not ack and not self._registry_holds(record.cid):
            self._delete_blob(record.cid)
            raise SyncError("publishing the snapshot record failed", stage=run.stage)
        run.durations["publish"] = self._monotonic() - started
        return ack

    def _registry_holds(self, cid: str) -> bool:
        try:
            current = self.targets.registry.hget(C.CHAINSTORE_HKEY, self.config.sync_key)
            value = json.loads(current) if current is not None else None
        except Exception as exc:
            self._log.warning("registry re-read failed: %s", exc)
            return False
        return isinstance(value, dict) and value.get("cid") == cid

    def _delete_blob(self, cid: str) -> None:
        """Best-effort delete of a blob this run uploaded but could not publish.

        Stores are content-addressed: unchanged data uploads to the CID an earlier
        publish already made, which the registry's record may still name. That blob
        is kept; retirement (SPEC §7.9) deletes it once it is superseded.
        """
        if self._published_before(cid):
            self._log.info("kept blob %s: an earlier publish of this node names it", cid)
            return
        try:
            self.targets.store.delete(cid, remote=True, local=True)
        except Exception as exc:
            self._log.warning("could not delete unpublished blob %s: %s", cid, exc)

    def _published_before(self, cid: str) -> bool:
        try:
            entries = self.targets.history.entries()
        except Exception as exc:  # unknown: keeping a blob is the safe side
            self._log.warning("sent history unreadable (%s); keeping blob %s", exc, cid)
            return True
        return any(e.cid == cid and not is_retired(e) for e in entries)

    # --- after the commit point ---------------------------------------------------------------
    def _write_history(self, run: _Run, record: SyncRecord, ack: bool) -> str | None:
        request = run.request
        entry = {
            "cid": record.cid,
            "version": record.version,
            "published_timestamp": record.timestamp,
            "request": {
                "archive_paths": request.echo_paths,
                "metadata": request.metadata,
                "runtime": request.runtime,
                "request_id": request.request_id,
            },
            "manifest": record.manifest.to_dict(),
            "archive_size_bytes": record.manifest.archive_size_bytes,
            "chainstore_ack": ack,
            "node_id": record.node_id,
            "durations": {k: run.durations.get(k) for k in ("archive", "upload", "publish")},
            "downtime_seconds": run.downtime,
        }
        try:
            self.targets.history.append(entry)
        except Exception as exc:
            self._log.exception("sent history could not be written")
            self._unrecorded.add(record.cid)  # retention cannot see it: retire it ourselves
            return f"sent history could not be written ({type(exc).__name__})"
        return None

    def _success_response(
        self, run: _Run, record: SyncRecord, history_error: str | None
    ) -> dict[str, Any]:
        response: dict[str, Any] = {
            "cid": record.cid,
            "version": record.version,
            "published_timestamp": record.timestamp,
            "archive_paths": run.request.echo_paths,
            "archive_size_bytes": record.manifest.archive_size_bytes,
            "chainstore_ack": True,
            "metadata": run.request.metadata,
            "downtime_seconds": run.downtime,
        }
        if run.request.request_id is not None:
            response["request_id"] = run.request.request_id
        if history_error is not None:
            response["history_error"] = history_error
        return response
