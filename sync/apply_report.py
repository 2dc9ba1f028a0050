"""After a successful apply: received history, ``last_apply.json``, local retirement.

Split from ``consumer.py`` so the orchestration reads as an outline. Nothing here can
undo an apply: every failure is logged and the apply stands (the durable applied CID
was recorded before this runs).

The report is owed from the moment the commit may become durable, and a runner can die
before it is written (SIGKILL after the journal said ``committed``, or after the state
said ``applied`` but before the app restarted). So ``begin()`` saves what the report
needs in ``sync_state/pending_report.json`` before the stop, ``report()`` removes it,
and ``finish_recovered()`` writes a report still owed after a restart, the same one
the normal path writes, exactly once:

- owed only if the durably applied CID is the pending one (a rolled-back or
  interrupted apply owes nothing; its pending file is dropped);
- the history entry is not written twice: an entry for the CID written after the
  pending file was saved (its write stamp is past the one noted then) is the one a
  killed runner already wrote;
- ``last_apply.json`` and retirement are idempotent.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CarError, SnapshotInvalid
from ..fsutil import atomic_write_json, fsync_dir
from ..stores.base import BlobStore
from . import constants as C
from .history import HistoryLog
from .records import SyncRecord, parse_record
from .retention import retire_superseded
from .staging import StagedPlan
from .state_fields import read_bool, read_int, read_number, required
from .state_records import Durations, LastApply, ReceivedEntry

if TYPE_CHECKING:
    from .consumer import ConsumerSettings


@dataclass(frozen=True, slots=True)
class PendingReport:
    """What the report of an apply needs, saved before its stop (``pending_report.json``)."""

    record: SyncRecord
    durations: Durations  # download and prepare; the commit's is not known yet
    stopped_timestamp: float  # wall clock, right before the stop
    was_running: bool
    history_mark: int  # write stamp of the latest received entry when this was saved

    def to_dict(self) -> dict[str, Any]:
        return {
            "record": self.record.to_dict(),
            "durations": self.durations.to_dict(),
            "stopped_timestamp": self.stopped_timestamp,
            "was_running": self.was_running,
            "history_mark": self.history_mark,
        }

    @classmethod
    def from_dict(cls, raw: Any) -> PendingReport:
        """Parse a saved pending report.

        Raises:
            ValueError: the file is not one this code wrote.
        """
        if not isinstance(raw, dict):
            raise ValueError("not an object")
        try:
            record = parse_record(json.dumps(raw["record"]))
        except (KeyError, SnapshotInvalid) as exc:
            raise ValueError(f"record: {exc}") from None
        durations = raw.get("durations")
        durations = durations if isinstance(durations, dict) else {}
        return cls(
            record=record,
            durations=Durations(
                required(read_number(durations, "download"), "durations.download"),
                required(read_number(durations, "prepare"), "durations.prepare"),
            ),
            stopped_timestamp=required(read_number(raw, "stopped_timestamp"), "stopped_timestamp"),
            was_running=required(read_bool(raw, "was_running"), "was_running"),
            history_mark=required(read_int(raw, "history_mark"), "history_mark"),
        )


@dataclass(frozen=True, slots=True)
class ApplyOutcome:
    """What one apply attempt did."""

    cid: str
    applied: bool
    kind: str | None = None  # failure kind (quarantine.FAILURE_KINDS)
    stage: str | None = None
    error: str | None = None
    stopped: bool = False  # the app was stopped (and restarted unless halted)
    halted: bool = False
    downtime_seconds: float | None = None
    history_path: str | None = None
    version: int | None = None  # the record's (metrics and alerts report it)
    size_bytes: int | None = None  # the record's archive_size_bytes

    @classmethod
    def failed(
        cls,
        record: SyncRecord,
        kind: str,
        exc: BaseException,
        *,
        stopped: bool,
        halted: bool,
        stage: str | None = None,
    ) -> ApplyOutcome:
        return cls(
            cid=record.cid,
            applied=False,
            kind=kind,
            stage=stage or getattr(exc, "stage", None),
            error=str(exc),
            stopped=stopped,
            halted=halted,
            version=record.version,
            size_bytes=record.manifest.archive_size_bytes,
        )


class ApplyReporter:
    """Writes what a successful apply leaves behind, exactly once, even across a crash."""

    def __init__(self, settings: ConsumerSettings, store: BlobStore, log: logging.Logger) -> None:
        self._control_dir = settings.control_dir
        self._state_dir = settings.sync_state_dir
        self._history = HistoryLog(settings.history_dir)
        self._store = store
        self._log = log

    @property
    def pending_path(self) -> Path:
        return self._state_dir / C.PENDING_REPORT_FILE

    # --- the report owed by one apply ----------------------------------------------------
    def begin(
        self, record: SyncRecord, durations: Durations, stopped_at: float, was_running: bool
    ) -> None:
        """Durably note the report ``record``'s apply will owe (call before the stop).

        Best effort: if it cannot be saved, the apply goes on and only a crash after
        its commit would leave it unreported (logged).
        """
        try:
            latest = self._history.latest()
            pending = PendingReport(
                record,
                durations,
                stopped_at,
                was_running,
                latest.written_ns if latest is not None else 0,
            )
            self._state_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.pending_path, pending.to_dict())
            fsync_dir(self._state_dir)
        except (OSError, CarError):
            self._log.exception("could not save the pending report of %s", record.cid)

    def discard(self) -> None:
        """The apply failed or was undone: it owes no report."""
        try:
            os.unlink(self.pending_path)
        except FileNotFoundError:
            pass
        except OSError as exc:  # left behind: the applied-CID check still ignores it
            self._log.error("could not remove %s: %s", C.PENDING_REPORT_FILE, exc)

    def pending(self) -> PendingReport | None:
        """The saved pending report, or None (an unreadable one is dropped, logged)."""
        try:
            raw = json.loads(self.pending_path.read_text(encoding="utf-8"))
            return PendingReport.from_dict(raw)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            self._log.error("dropping unreadable %s: %s", C.PENDING_REPORT_FILE, exc)
            self.discard()
            return None

    def finish_recovered(
        self, applied_cid: str | None, applied_at: float | None, now: float
    ) -> ApplyOutcome | None:
        """Write the report a killed runner still owed for ``applied_cid`` (else nothing).

        Args:
            applied_cid: the durably applied CID (``current_apply.json``).
            applied_at: when it was recorded as applied (None: unknown, use ``now``).
            now: wall-clock seconds; the app was down from the stop until about now.
        """
        pending = self.pending()
        if pending is None:
            return None
        if applied_cid != pending.record.cid:
            self.discard()  # rolled back or never committed: nothing to report
            return None
        downtime = max(now - pending.stopped_timestamp, 0.0) if pending.was_running else 0.0
        self._log.info("reporting the apply of %s finished by recovery", applied_cid)
        return self.report(
            pending.record,
            pending.durations.with_commit(None),
            downtime,
            applied_at if applied_at is not None else now,
            None,
            recovered=True,
        )

    def report(
        self,
        record: SyncRecord,
        durations: Durations,
        downtime: float,
        applied_at: float,
        plan: StagedPlan | None,
        *,
        recovered: bool = False,
    ) -> ApplyOutcome:
        """History entry, ``last_apply.json`` and retirement; never raises."""
        history_path = self._append_history(
            record, durations, downtime, applied_at, plan, recovered
        )
        self._write_last_apply(record, applied_at)
        retire_superseded(
            self._history,
            self._store,
            record.cid,
            remote=False,
            local=True,
            now=applied_at,
            log=self._log,
        )
        self.discard()
        self._log.info(
            "applied %s (version %s): downtime %.2fs; download %.2fs, prepare %.2fs, commit %s",
            record.cid,
            record.version,
            downtime,
            durations.download,
            durations.prepare,
            f"{durations.commit:.2f}s" if durations.commit is not None else "unknown",
        )
        return ApplyOutcome(
            cid=record.cid,
            applied=True,
            stopped=downtime > 0,
            downtime_seconds=downtime,
            history_path=history_path,
            version=record.version,
            size_bytes=record.manifest.archive_size_bytes,
        )

    def _already_written(self, cid: str) -> Path | None:
        """The entry for ``cid`` a killed runner wrote after saving its pending report."""
        pending = self.pending()
        latest = self._history.latest()
        if pending is None or latest is None or pending.record.cid != cid:
            return None
        if latest.cid == cid and latest.written_ns > pending.history_mark:
            return latest.path
        return None

    def _append_history(
        self,
        record: SyncRecord,
        durations: Durations,
        downtime: float,
        applied_at: float,
        plan: StagedPlan | None,
        recovered: bool,
    ) -> str | None:
        extracted = plan.extracted_paths if plan else record.manifest.archive_paths
        entry = ReceivedEntry.applied(
            record,
            applied_at=applied_at,
            extracted_paths=extracted,
            durations=durations,
            downtime=downtime,
            recovered=recovered,
        )
        try:
            written = self._already_written(record.cid)
            return str(written if written is not None else self._history.append(entry))
        except Exception:  # history is an audit trail; the apply itself succeeded
            self._log.exception("could not write the received history for %s", record.cid)
            return None

    def _write_last_apply(self, record: SyncRecord, applied_at: float) -> None:
        data = LastApply.applied(record, applied_at).to_dict()
        try:
            atomic_write_json(self._control_dir / C.LAST_APPLY_FILE, data, mode=C.CONTROL_FILE_MODE)
        except Exception:  # e.g. the app put a directory there; never fatal
            self._log.exception("could not write %s", C.LAST_APPLY_FILE)
