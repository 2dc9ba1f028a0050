"""SnapshotConsumer: one consumer tick, start-up recovery and the first-start apply.

The outline of ``tick`` (README, "Consumer") is: read the record -> skip if its CID is the
durably applied one, quarantined, or the instance is halted -> preflight while the app
still runs (``validate_record``, download, ``verify_archive``, ``ApplyTransaction.stage``)
-> confirmed stop -> ``commit`` -> start -> record the apply (``sync/apply_report.py``).
Failures are quarantined by kind (``sync/quarantine.py``); a rollback that cannot
prove the volume consistent halts the instance and the container stays stopped. What
a runner killed mid-apply left is resolved by ``sync/startup_recovery.py`` before the
first start; the report such an apply still owes is written at the first tick.

Time: ``now`` is wall-clock seconds (quarantine and history survive restarts);
durations and downtime come from the injected monotonic clock.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ApplyFailed, CarError, TransientError
from ..stores.base import BlobStore
from . import constants as C
from . import quarantine as Q
from .apply import ApplyTransaction, StepHook
from .apply_report import ApplyOutcome, ApplyReporter
from .apply_state import ApplyState
from .chunked_apply import clear_staging
from .container_control import ContainerControl
from .crypto.framing import Sealer
from .journal import Journal
from .paths import PathResolver
from .preflight import ConsumerLimits
from .prepare import PreflightFailed, SnapshotPreparer
from .quarantine import Quarantine
from .record_source import OutageLog, RecordSource
from .records import RecordInvalid, SyncRecord, parse_record
from .signing import RecordVerifier
from .startup_recovery import StartupRecovery
from .state_records import Durations
from .volume_staging import sweep_volume_staging


@dataclass(frozen=True, slots=True)
class ConsumerSettings:
    """Where the consumer keeps its state and what it accepts."""

    sync_state_dir: Path
    control_dir: Path  # host path of /r1en_system/volume-sync (for last_apply.json)
    history_dir: Path  # sync_history/received
    limits: ConsumerLimits = field(default_factory=ConsumerLimits)
    apply_mode: str = C.APPLY_MODE_OVERLAY  # SYNC.APPLY_MODE
    verifier: RecordVerifier | None = None  # SYNC.TRUSTED_KEYS; None: records not verified
    sealer: Sealer | None = None  # SYNC.ENCRYPTION_KEY_FILE


# The stage label of a failure whose exception carries none (store errors,
# container errors): what ``car sync status`` and current_apply.json show.
_KIND_STAGES = {
    Q.KIND_VALIDATION: C.STAGE_VALIDATION,
    Q.KIND_DOWNLOAD: C.STAGE_R1FS_DOWNLOAD,
    Q.KIND_DIGEST: C.STAGE_R1FS_DOWNLOAD,
    Q.KIND_EXTRACT: C.STAGE_EXTRACT,
    Q.KIND_SPACE: C.STAGE_EXTRACT,
    Q.KIND_STOP: C.STAGE_RUNTIME_STOP,
    Q.KIND_COMMIT: C.STAGE_COMMIT,
}


class SnapshotConsumer:
    """Applies the latest record of one sync key to this instance's volumes."""

    def __init__(
        self,
        settings: ConsumerSettings,
        source: RecordSource,
        store: BlobStore,
        control: ContainerControl,
        resolver: PathResolver,
        log: logging.Logger,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        on_step: StepHook | None = None,
    ) -> None:
        self._settings = settings
        self._source = source
        self._store = store
        self._control = control
        self._resolver = resolver
        self._log = log
        self._mono = monotonic
        self._on_step = on_step  # test-only: pause/kill a commit halfway
        self.state = ApplyState(settings.sync_state_dir)
        self.quarantine = Quarantine(settings.sync_state_dir / C.QUARANTINE_FILE)
        self._journal = Journal(settings.sync_state_dir)
        self._recovery = StartupRecovery(self.state, self.quarantine, self._journal, resolver, log)
        self._reporter = ApplyReporter(settings, store, log)
        self._store_outage = OutageLog(f"blob store {store.describe()}", log)
        self._preparer = SnapshotPreparer(
            settings.sync_state_dir,
            settings.limits,
            store,
            resolver,
            self._journal,
            self._store_outage,
            log,
            monotonic=monotonic,
            on_step=on_step,
            mirror=settings.apply_mode == C.APPLY_MODE_MIRROR,
            verifier=settings.verifier,
            sealer=settings.sealer,
        )
        self._halt_logged = False

    # --- halt ------------------------------------------------------------------------
    def is_halted(self) -> bool:
        return self.state.is_halted()

    def halt_reason(self) -> str | None:
        return self.state.halt_reason()

    def clear_halt(self) -> bool:
        """Leave the halt (``car sync retry``); run ``recover()`` before the next start."""
        self._halt_logged = False
        return self.state.clear_halt()

    @property
    def registry_up(self) -> bool:
        """False while the registry's last read failed (metrics; README, "Operating")."""
        return self._source.reachable

    @property
    def store_up(self) -> bool:
        """False while the blob store's last download failed."""
        return not self._store_outage.down

    # --- entry points ----------------------------------------------------------------
    def tick(self, now: float) -> ApplyOutcome | None:
        """One consumer step while the app runs; None when there was nothing to do."""
        if self._halted():
            return None
        self._finish_recovered(now)
        text = self._source.read(now)
        if text is None:
            return None
        record = self._parse(text, now)
        if record is None or not self._due(record, now):
            return None
        return self._apply(record, now)

    def needs_initial_apply(self, now: float) -> bool:
        """True if the current record differs from the durably applied CID (or none)."""
        if self._halted():
            return False
        text = self._source.read(now)
        if text is None:
            return False
        try:
            record = parse_record(text)
        except RecordInvalid:
            return False  # the app starts; the first tick quarantines and logs the record
        return self._due(record, now)

    def apply_before_first_start(self, now: float) -> ApplyOutcome | None:
        """Apply the current record before the container's first start (no stop needed)."""
        return self.tick(now)

    def recover(self, now: float | None = None) -> None:
        """Resolve an unfinished apply journal before the container starts."""
        self._recovery.run(time.time() if now is None else now)
        self._sweep_downloads()  # after recovery: an apply it finished keeps its copy
        clear_staging(self._settings.sync_state_dir, self._log)
        sweep_volume_staging(self._resolver.syncable_roots(), self._log)

    # --- steps -----------------------------------------------------------------------
    def _sweep_downloads(self) -> None:
        """At start: drop what a killed run left (partials, CIDs never applied).

        Only the applied CID's copy stays (retirement removes it after the next apply),
        so ``downloads/`` never grows past the applied snapshot plus the one in hand.
        """
        applied = self.state.applied_cid()
        removed = self._store.sweep_local(keep={applied} if applied else ())
        if removed:
            self._log.info("removed %d leftover download(s): %s", len(removed), ", ".join(removed))

    def _drop_download(self, cid: str) -> None:
        """A failed apply's local copy is garbage: a retry downloads it again."""
        try:
            self._store.delete(cid, remote=False, local=True)
        except CarError as exc:  # housekeeping; the next start's sweep retries
            self._log.warning("could not remove the download of %s: %s", cid, exc)

    def _finish_recovered(self, now: float) -> None:
        """Write the report an apply finished by ``recover()`` still owes.

        (docs/FORMAT.md, "Received history entry".) Runs at the first tick, i.e. after the
        app started (as after a normal apply), or before the next apply, so reports keep
        their order.
        """
        current = self.state.load()
        self._reporter.finish_recovered(current.applied_cid, current.applied_timestamp, now)

    def _halted(self) -> bool:
        if not self.state.is_halted():
            return False
        if not self._halt_logged:
            self._log.error("sync halted: %s (car sync retry clears it)", self.halt_reason())
            self._halt_logged = True
        return True

    def _parse(self, text: str, now: float) -> SyncRecord | None:
        try:
            return parse_record(text)
        except RecordInvalid as exc:
            # Quarantined under the CID it names (if readable) and the value's sha256, so
            # `car sync status` says which record failed; logged once per backoff step.
            cid = exc.cid or ""
            digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
            if self.quarantine.blocking(cid, digest, now) is None:
                named = f"cid {cid}" if cid else "no readable cid"
                error = (
                    f"registry record for key {self._source.key!r} ({named}, value sha256 "
                    f"{digest[:16]}) is malformed: {exc}"
                )
                self._log.warning("%s", error)
                self.quarantine.record_failure(
                    cid,
                    digest,
                    kind=Q.KIND_VALIDATION,
                    error=error,
                    now=now,
                    stage=C.STAGE_VALIDATION,
                )
            return None

    def _due(self, record: SyncRecord, now: float) -> bool:
        if record.cid == self.state.applied_cid():
            return False
        return self.quarantine.blocking(record.cid, record.manifest.digest(), now) is None

    def _apply(self, record: SyncRecord, now: float) -> ApplyOutcome | None:
        start = self._mono()
        self.state.begin_prepare(record.cid, record.version, now=now)
        txn = self._preparer.transaction(record)
        try:
            download_s = self._preparer.prepare(record, txn)
        except PreflightFailed as failed:
            txn.rollback()  # drops a partial plan; no volume was touched
            return self._quarantine_failure(record, failed.kind, failed.exc, now, stopped=False)
        except TransientError as exc:
            txn.rollback()
            self._store_outage.failed(exc)
            self.state.mark_failed(
                rolled_back=False, error=str(exc), stage=C.STAGE_R1FS_DOWNLOAD, now=now
            )
            return None
        durations = Durations(download=download_s, prepare=self._mono() - start - download_s)
        return self._stop_commit_start(record, txn, durations, now)

    def _stop_commit_start(
        self, record: SyncRecord, txn: ApplyTransaction, durations: Durations, now: float
    ) -> ApplyOutcome:
        was_running = self._control.is_running()
        # The report this apply owes survives a crash from here on (sync/apply_report.py).
        self._reporter.begin(record, durations, now + durations.elapsed, was_running)
        stopped_at = self._mono()
        if was_running:
            try:
                self._control.stop_confirmed()
            except CarError as exc:  # aborts before any write, with backoff
                txn.rollback()
                self._reporter.discard()
                return self._quarantine_failure(record, Q.KIND_STOP, exc, now, stopped=False)
        t_commit = self._mono()
        try:
            self._commit(record, txn, now)
        except ApplyFailed as exc:
            self._reporter.discard()
            if not exc.rolled_back:
                self._enter_halt(record.cid, str(exc), now)
                return ApplyOutcome.failed(
                    record, Q.KIND_COMMIT, exc, stopped=was_running, halted=True
                )
            outcome = self._quarantine_failure(record, Q.KIND_COMMIT, exc, now, stopped=was_running)
            self._restart(was_running)
            return outcome
        durations = durations.with_commit(self._mono() - t_commit)
        self.state.mark_applied(now=now)
        if not txn.finish():
            self._log.error("backup dir of %s not removed; retried at the next start", record.cid)
        self._restart(was_running)
        downtime = self._mono() - stopped_at if was_running else 0.0
        self.quarantine.clear(record.cid)
        applied_at = now + (self._mono() - stopped_at)
        return self._reporter.report(record, durations, downtime, applied_at, txn.plan)

    def _commit(self, record: SyncRecord, txn: ApplyTransaction, now: float) -> None:
        """State ``applying``, then the commit; every failure comes out as ``ApplyFailed``.

        ``commit()`` rolls back whatever it raises on; an exception that still escapes
        it is a bug whose effect on the volume is unknown, so it halts (README, "Consumer").
        """
        try:
            self.state.begin_commit(now=now)
        except OSError as exc:  # nothing was written yet
            raise ApplyFailed(
                f"apply state not writable: {exc.strerror}", rolled_back=True
            ) from exc
        try:
            txn.commit()
        except ApplyFailed:
            raise
        except Exception as exc:
            self._log.exception("commit of %s escaped its own rollback", record.cid)
            raise ApplyFailed(
                f"commit failed and its rollback did not finish: {type(exc).__name__}: {exc}",
                rolled_back=False,
                hint="inspect the volume, then run `car sync retry INSTANCE`",
            ) from exc

    def _restart(self, was_running: bool) -> None:
        if not was_running:
            return  # before the first start: the runner starts the container itself
        try:
            self._control.start()
        except CarError as exc:
            self._log.error("container start after apply failed: %s", exc)

    def _quarantine_failure(
        self, record: SyncRecord, kind: str, exc: BaseException, now: float, *, stopped: bool
    ) -> ApplyOutcome:
        stage = getattr(exc, "stage", None) or _KIND_STAGES.get(kind)
        self._drop_download(record.cid)
        entry = self.quarantine.record_failure(
            record.cid, record.manifest.digest(), kind=kind, error=str(exc), now=now, stage=stage
        )
        # A commit failure was rolled back, whether or not the app had been started yet.
        rolled_back = kind == Q.KIND_COMMIT
        self.state.mark_failed(rolled_back=rolled_back, error=str(exc), stage=stage, now=now)
        self._log.warning(
            "snapshot %s refused (%s): %s; quarantined until +%.0fs",
            record.cid,
            kind,
            exc,
            entry.retry_at - now,
        )
        return ApplyOutcome.failed(record, kind, exc, stopped=stopped, halted=False, stage=stage)

    def _enter_halt(self, cid: str, reason: str, now: float) -> None:
        self.state.mark_uncertain(reason, now=now)
        self.state.halt(reason, now=now, cid=cid)
        self._log.error("sync halted, container stays stopped: %s", reason)
