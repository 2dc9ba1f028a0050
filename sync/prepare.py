"""SnapshotPreparer: the consumer's work before the stop, for every snapshot format.

While the app still runs the record's signature is checked (with ``SYNC.TRUSTED_KEYS``)
and the record validated, the snapshot fetched and verified and the apply staged, so a
bad snapshot never costs downtime (README, "For operators").
Per format:

- tar (``tar.zst``, ``tar.gz``): download the archive (bounded by the manifest's size),
  verify its digest, stage the plan (``ApplyTransaction.stage``);
- chunked: ``ChunkedApplyTransaction.prepare`` fetches the index, plans, and fetches
  only the chunks of the files it will write.

Every failure comes out as ``PreflightFailed`` with its quarantine kind
(``failure_kind``), except a transient store error, which the consumer retries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import BlobCorrupt, BlobTooLarge, SnapshotInvalid, StoreError, TransientError
from ..stores.base import BlobStore
from . import constants as C
from . import quarantine as Q
from .apply import ApplyTransaction, StepHook
from .chunked_apply import ChunkedApplyTransaction
from .chunks.reader import ChunkCorrupt, PackMissing
from .crypto.framing import Sealer
from .journal import Journal
from .paths import PathResolver
from .preflight import ConsumerLimits, DigestMismatch, NoSpace, validate_record, verify_archive
from .record_source import OutageLog
from .records import SyncRecord
from .signing import RecordVerifier


class PreflightFailed(Exception):
    """A preflight step failed with a quarantine kind."""

    def __init__(self, kind: str, exc: BaseException) -> None:
        super().__init__(str(exc))
        self.kind = kind
        self.exc = exc


def failure_kind(exc: BaseException) -> str:
    """The quarantine kind of a preflight failure."""
    if isinstance(exc, NoSpace):
        return Q.KIND_SPACE
    # The bytes under the CID do not match the record (content, or a size it understated).
    if isinstance(exc, (DigestMismatch, BlobCorrupt, BlobTooLarge, ChunkCorrupt)):
        return Q.KIND_DIGEST
    if isinstance(exc, (StoreError, PackMissing)):
        return Q.KIND_DOWNLOAD
    if isinstance(exc, SnapshotInvalid) and exc.stage == C.STAGE_EXTRACT:
        return Q.KIND_EXTRACT
    return Q.KIND_VALIDATION


class SnapshotPreparer:
    """Makes the apply transaction for a record and prepares it while the app runs."""

    def __init__(
        self,
        state_dir: Path,
        limits: ConsumerLimits,
        store: BlobStore,
        resolver: PathResolver,
        journal: Journal,
        outage: OutageLog,
        log: logging.Logger,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        on_step: StepHook | None = None,
        mirror: bool = False,
        verifier: RecordVerifier | None = None,
        sealer: Sealer | None = None,
    ) -> None:
        self._mirror = mirror  # SYNC.APPLY_MODE "mirror" (sync/mirror.py)
        self._verifier = verifier  # SYNC.TRUSTED_KEYS (sync/signing.py)
        self._sealer = sealer  # SYNC.ENCRYPTION_KEY_FILE
        self._state_dir = state_dir
        self._limits = limits
        self._store = store
        self._resolver = resolver
        self._journal = journal
        self._outage = outage
        self._log = log
        self._mono = monotonic
        self._on_step = on_step  # test-only: pause/kill a commit halfway

    def transaction(self, record: SyncRecord) -> ApplyTransaction:
        """The transaction that applies ``record``'s format."""
        if record.manifest.archive_format != C.ARCHIVE_FORMAT_CHUNKED:
            return ApplyTransaction(
                self._journal,
                self._resolver,
                self._log,
                on_step=self._on_step,
                mirror=self._mirror,
                sealer=self._sealer,
            )
        return ChunkedApplyTransaction(
            self._journal,
            self._resolver,
            self._log,
            store=self._store,
            state_dir=self._state_dir,
            on_step=self._on_step,
            mirror=self._mirror,
            sealer=self._sealer,
        )

    def prepare(self, record: SyncRecord, txn: ApplyTransaction) -> float:
        """Validate, download, verify and stage; returns the download seconds.

        Raises:
            PreflightFailed: the record or snapshot was refused (quarantine kind).
            TransientError: the store could not be reached (retry later).
        """
        try:
            if self._verifier is not None:  # first: nothing is fetched for a forged record
                self._verifier.verify(record)
            validate_record(
                record, self._limits, self._resolver, can_decrypt=self._sealer is not None
            )
        except SnapshotInvalid as exc:
            raise PreflightFailed(Q.KIND_VALIDATION, exc) from exc
        t0 = self._mono()
        if isinstance(txn, ChunkedApplyTransaction):  # fetches only what it will write
            self._staged(record, lambda: txn.prepare(record, self._limits))
            self._outage.ok()
            return self._mono() - t0
        try:
            # max_bytes: the manifest's size, already checked against MAX_ARCHIVE_BYTES, so
            # a record that lies about its size cannot make the download fill the disk.
            archive = self._store.get(
                record.cid,
                sha256=record.manifest.archive_sha256,
                max_bytes=record.manifest.archive_size_bytes,
            )
        except TransientError:
            raise
        except StoreError as exc:
            raise PreflightFailed(failure_kind(exc), exc) from exc
        self._outage.ok()
        download_s = self._mono() - t0
        try:
            # get() already hashed the copy against a sha2-256 CID: no second full read.
            verify_archive(archive, record, verified_by_store=True)
        except DigestMismatch as exc:
            self._store.delete(record.cid, remote=False, local=True)
            raise PreflightFailed(Q.KIND_DIGEST, exc) from exc
        self._staged(record, lambda: txn.stage(archive, record, self._limits))
        return download_s

    def _staged(self, record: SyncRecord, stage: Callable[[], object]) -> None:
        """Run a staging step; its failures become quarantine kinds."""
        try:
            stage()
        except TransientError:
            raise
        except (SnapshotInvalid, StoreError, OSError) as exc:
            kind = Q.KIND_EXTRACT if isinstance(exc, OSError) else failure_kind(exc)
            raise PreflightFailed(kind, exc) from exc
        except Exception as exc:  # a member no check foresaw: refused, never retried each tick
            self._log.exception("staging of %s failed unexpectedly", record.cid)
            raise PreflightFailed(Q.KIND_EXTRACT, exc) from exc
