"""After a successful apply: received history, ``last_apply.json``, local retirement.

Split from ``consumer.py`` so the orchestration reads as an outline. Nothing here can
undo an apply: every failure is logged and the apply stands (the durable applied CID
was recorded before this runs).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..fsutil import atomic_write_json
from ..stores.base import BlobStore
from . import constants as C
from .history import HistoryLog
from .records import SyncRecord
from .retention import retire_superseded
from .staging import StagedPlan

if TYPE_CHECKING:
    from .consumer import ConsumerSettings


@dataclass(frozen=True, slots=True)
class Durations:
    """Seconds spent per phase (SPEC §8 ``durations {download, prepare, commit}``)."""

    download: float = 0.0
    prepare: float = 0.0
    commit: float = 0.0

    def with_commit(self, seconds: float) -> Durations:
        return replace(self, commit=seconds)

    def to_dict(self) -> dict[str, float]:
        return {
            "download": round(self.download, 6),
            "prepare": round(self.prepare, 6),
            "commit": round(self.commit, 6),
        }


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
        )


class ApplyReporter:
    """Writes what a successful apply leaves behind."""

    def __init__(self, settings: ConsumerSettings, store: BlobStore, log: logging.Logger) -> None:
        self._control_dir = settings.control_dir
        self._history = HistoryLog(settings.history_dir)
        self._store = store
        self._log = log

    def report(
        self,
        record: SyncRecord,
        durations: Durations,
        downtime: float,
        applied_at: float,
        plan: StagedPlan | None,
    ) -> ApplyOutcome:
        """History entry, ``last_apply.json`` and retirement; never raises."""
        history_path = self._append_history(record, durations, downtime, applied_at, plan)
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
        self._log.info(
            "applied %s (version %s): downtime %.2fs; download %.2fs, prepare %.2fs, commit %.2fs",
            record.cid,
            record.version,
            downtime,
            durations.download,
            durations.prepare,
            durations.commit,
        )
        return ApplyOutcome(
            cid=record.cid,
            applied=True,
            stopped=downtime > 0,
            downtime_seconds=downtime,
            history_path=history_path,
        )

    def _append_history(
        self,
        record: SyncRecord,
        durations: Durations,
        downtime: float,
        applied_at: float,
        plan: StagedPlan | None,
    ) -> str | None:
        entry: dict[str, Any] = {
            "cid": record.cid,
            "version": record.version,
            "source_timestamp": record.timestamp,
            "applied_timestamp": applied_at,
            "node_id": record.node_id,
            "metadata": record.metadata,
            "manifest": record.manifest.to_dict(),
            "extracted_paths": list(
                plan.extracted_paths if plan else record.manifest.archive_paths
            ),
            "durations": durations.to_dict(),
            "downtime_seconds": round(downtime, 6),
        }
        try:
            return str(self._history.append(entry))
        except Exception:  # history is an audit trail; the apply itself succeeded
            self._log.exception("could not write the received history for %s", record.cid)
            return None

    def _write_last_apply(self, record: SyncRecord, applied_at: float) -> None:
        data = {
            "cid": record.cid,
            "version": record.version,
            "source_timestamp": record.timestamp,
            "applied_timestamp": applied_at,
            "node_id": record.node_id,
            "metadata": record.metadata,
        }
        try:
            atomic_write_json(self._control_dir / C.LAST_APPLY_FILE, data, mode=C.CONTROL_FILE_MODE)
        except Exception:  # e.g. the app put a directory there; never fatal
            self._log.exception("could not write %s", C.LAST_APPLY_FILE)
