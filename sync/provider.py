"""SnapshotPublisher: one provider tick, from request.json to a published record.

``publish_pending`` reads as README's outline ("Provider"): claim -> validate -> (offline)
confirmed stop -> build archive -> restart -> verify -> upload -> publish (commit point) ->
history -> response -> retire. Capturing (stop, build, restart as soon as the archive is
complete, before any network transfer) is ``SnapshotCapture``'s job. Every failure
is answered once through ``ControlDir.fail`` with its stage label; texts sent to the app
name container paths only (backend and OS details go to the log). The temp archive is
always removed.

A registry that is down at the commit point does not fail the publish at once: the
uploaded snapshot *waits* (``CommitPoint``'s retry window, ``PUBLISH_RETRY_SECONDS``)
and each later tick makes one more attempt, the request staying ``in_progress`` and no
new request being claimed meanwhile. Ticks return at once, so the runner's loop goes on;
the app was already restarted after the capture. When the window is over the request
fails at ``chainstore_publish`` and the blob is deleted. A runner that stops while a
publish waits makes one last attempt (``shutdown``) so the app gets its answer.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CarError, RequestRejected, SyncError
from ..registries.base import Registry
from ..registries.lease import LeaseHolder
from ..stores.base import BlobStore
from ..stores.cid import sha256_file, sha256_from_cid
from . import constants as C
from .archive import ArchiveInfo
from .capture import ArchiveSettings, SnapshotCapture, remove_capture, sealed
from .chunked_retention import retire_published
from .chunks.index import SnapshotIndex
from .commit_point import CommitPoint, PendingCommit
from .container_control import ContainerControl
from .control_files import ClaimedRequest
from .crypto.framing import Sealer
from .history import HistoryLog
from .lease_keeper import LeaseKeeper, LeaseRefused, LeaseSettings
from .paths import PathResolver
from .records import Manifest, SyncRecord, SyncRequest, encryption_label
from .request import parse_request
from .request_channels import RequestChannel
from .retention import UnrecordedCids, delete_unpublished
from .signing import RecordSigner
from .state_records import SentDurations, SentEntry

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PublisherConfig:
    """The provider's local settings (from ``SyncConfig`` plus the node identity)."""

    sync_key: str
    node_id: str
    work_dir: Path  # runner-private directory for the temp archive
    state_dir: Path  # runner-private durable state (sync_state/): the unrecorded CIDs
    archive_format: str = C.ARCHIVE_FORMAT_ZST
    compression_level: int = C.DEFAULT_ZSTD_LEVEL
    allow_online: bool = False
    max_archive_bytes: int | None = C.DEFAULT_MAX_ARCHIVE_BYTES
    publish_retry_seconds: float = C.DEFAULT_PUBLISH_RETRY_SECONDS
    keep_snapshots: int = C.DEFAULT_KEEP_SNAPSHOTS
    signer: RecordSigner | None = None  # SYNC.SIGNING_KEY_FILE: every record is signed
    sealer: Sealer | None = None  # SYNC.ENCRYPTION_KEY_FILE: blobs are stored sealed
    instance_id: str = ""  # with node_id, who holds the key's lease
    lease_seconds: float = C.MIN_LEASE_SECONDS
    takeover: bool = False


@dataclass(frozen=True, slots=True)
class PublishTargets:
    """Where a snapshot goes: the blob store, the registry and the sent history."""

    store: BlobStore
    registry: Registry
    history: HistoryLog


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    """The answer given to the app, for the caller's log and status."""

    status: str  # "ok", "error", or "in_progress" while waiting for the registry
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
    commit: PendingCommit | None = None  # set once the record is built


class SnapshotPublisher:
    """Publishes the app's snapshot requests (one at a time, one per tick)."""

    def __init__(
        self,
        config: PublisherConfig,
        control: RequestChannel,
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
        holder = LeaseHolder(config.node_id, config.instance_id)
        self.lease = LeaseKeeper(
            targets.registry,
            config.sync_key,
            LeaseSettings(holder, config.lease_seconds, config.takeover),
            config.state_dir / C.LEASE_FILE,
            log=log,
        )
        self.commit_point = CommitPoint(
            targets.registry,
            config.sync_key,
            config.publish_retry_seconds,
            monotonic=monotonic,
            log=log,
            guard=self.lease.require,
        )
        self._waiting: _Run | None = None  # uploaded, waiting for the registry
        # Published CIDs missing from the sent history (retention cannot see them).
        self._unrecorded = UnrecordedCids(config.state_dir / C.UNRECORDED_CIDS_FILE, log)

    @property
    def waiting_for_registry(self) -> bool:
        """True while an uploaded snapshot waits for the registry (metrics: registry down)."""
        return self._waiting is not None

    def recover(self) -> None:
        """At start: re-queue an unfinished request and drop stale archives."""
        self._remove_stale_archives()
        # Temp files of puts killed mid-upload; another runner's put in flight is kept.
        for name in self.targets.store.sweep_local():
            self._log.info("removed %s left by an interrupted upload", name)
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
                remove_capture(path)
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
            None when nothing was pending, else what the app was told (``in_progress``
            while a publish waits for the registry).
        """
        if self._waiting is not None:
            run, self._waiting = self._waiting, None
            return self._guarded(run, lambda: self._commit_and_finish(run))
        claimed = self._claim()
        if claimed is None:
            return None
        request = self._validate(claimed)
        if isinstance(request, PublishOutcome):
            return request
        archive = self.config.work_dir / f"snapshot-{time.time_ns()}.{self.config.archive_format}"
        run = _Run(claimed, request, now, archive)
        try:
            return self._guarded(run, lambda: self._publish(run))
        finally:  # once uploaded, the store holds the snapshot: a waiting publish needs no file
            with contextlib.suppress(FileNotFoundError):
                remove_capture(archive)

    def shutdown(self) -> PublishOutcome | None:
        """The runner stops: a publish waiting for the registry gets one last attempt.

        Returns:
            None when nothing was waiting, else what the app was told (``ok``, or
            ``error`` at ``chainstore_publish`` with the blob deleted).
        """
        if self._waiting is None:
            return None
        run, self._waiting = self._waiting, None
        return self._guarded(run, lambda: self._commit_and_finish(run, last_attempt=True))

    def _guarded(self, run: _Run, step: Callable[[], PublishOutcome]) -> PublishOutcome:
        """Run a publish step; any failure answers the request once, at ``run.stage``."""
        try:
            return step()
        except SyncError as exc:
            return self._fail(run.claimed, exc.stage or run.stage, exc.message)
        except Exception:
            self._log.exception("volume-sync publish failed unexpectedly at %s", run.stage)
            return self._fail(run.claimed, run.stage, f"internal error during {run.stage}")

    def _publish(self, run: _Run) -> PublishOutcome:
        self.lease.precheck()  # before the app is stopped
        self.config.work_dir.mkdir(parents=True, exist_ok=True)
        info = self._capture(run)
        self._verify(run, info)
        cid = self._upload(run, info)
        run.commit = self.commit_point.begin(self._signed(self._record(run, info, cid)))
        return self._commit_and_finish(run)

    def _commit_and_finish(self, run: _Run, *, last_attempt: bool = False) -> PublishOutcome:
        """One attempt at the commit point; then finish, wait for the next tick, or fail."""
        run.stage = C.STAGE_CHAINSTORE_PUBLISH
        assert run.commit is not None  # _publish built the record
        record = run.commit.record
        try:
            ack = self.commit_point.attempt(run.commit)
        except LeaseRefused:
            self._delete_blob(record.cid)  # never published, so no consumer needs it
            raise
        if ack is None:
            if not last_attempt and not self.commit_point.expired(run.commit):
                return self._wait_for_registry(run)
            self._delete_blob(record.cid)
            raise SyncError(
                f"publishing the snapshot record failed: {run.commit.last_error}", stage=run.stage
            )
        if run.commit.attempts > 1:
            self._log.info(
                "registry reachable again: snapshot %s published after %d attempts",
                record.cid,
                run.commit.attempts,
            )
        run.durations["publish"] = self._monotonic() - run.commit.started
        return self._finish(run, record, ack)

    def renew_lease(self) -> None:
        """A tick: keep the key's lease, or log that it is lost (never raises)."""
        self.lease.renew()

    def _wait_for_registry(self, run: _Run) -> PublishOutcome:
        assert run.commit is not None
        if run.commit.attempts == 1:
            self._log.warning(
                "registry unavailable: publish of %s retried at each tick for up to %.0f s "
                "(the request stays in_progress): %s",
                run.commit.record.cid,
                self.config.publish_retry_seconds,
                run.commit.last_error,
            )
        self._waiting = run
        response = {"status": "in_progress", "stage": run.stage}
        return PublishOutcome("in_progress", response, cid=run.commit.record.cid)

    def _finish(self, run: _Run, record: SyncRecord, ack: bool) -> PublishOutcome:
        """After the commit point: history, the ``ok`` answer, retirement."""
        cid = record.cid
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
        self._retire(cid, run.now)
        self._unrecorded.retire(self.targets.store, keep=cid)
        return PublishOutcome("ok", {**response, "status": "ok"}, cid=cid)

    def _retire(self, keep_cid: str, now: float, newest_index: SnapshotIndex | None = None) -> None:
        """Delete what ``KEEP_SNAPSHOTS`` no longer keeps (docs/FORMAT.md); never raises."""
        retire_published(
            self.targets.history,
            self.targets.store,
            keep_cid,
            keep=self.config.keep_snapshots,
            newest_index=newest_index,
            now=now,
            log=self._log,
            sealer=self.config.sealer,
        )

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
        # Sealed after the app restarted: the store only ever gets the sealed file.
        return sealed(captured.info, run.archive, self.config.sealer)

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
            encryption=encryption_label(self.config.archive_format, self.config.sealer is not None),
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

    def _signed(self, record: SyncRecord) -> SyncRecord:
        """The record as published: signed for this sync key when a signing key is set."""
        signer = self.config.signer
        return record if signer is None else signer.sign(self.config.sync_key, record)

    def _delete_blob(self, cid: str) -> None:
        delete_unpublished(self.targets.store, self.targets.history, cid, self._log)

    # --- after the commit point ---------------------------------------------------------------
    def _write_history(self, run: _Run, record: SyncRecord, ack: bool) -> str | None:
        durations = SentDurations(
            archive=run.durations.get("archive"),
            upload=run.durations.get("upload"),
            publish=run.durations.get("publish"),
        )
        entry = SentEntry.published(
            record, run.request, ack=ack, durations=durations, downtime=run.downtime
        )
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
