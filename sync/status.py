"""What ``car sync status`` and ``car sync history`` show, read from the data directory.

Plain functions over files the runner writes (``runner.json``, ``sync_history/``,
``sync_state/``), so an operator can inspect a stopped instance and the CLI needs no
running runner. Each status object carries at least the fields README "Inspecting" names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..layout import DataDir, InstancePaths
from . import constants as C
from .apply_state import ApplyState
from .history import HistoryEntry, HistoryLog
from .pin import load_pin
from .quarantine import Quarantine
from .runner_state import RunnerState
from .state_records import HistoryRecord


def _summary(entry: HistoryRecord | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {"cid": entry.cid, "version": entry.version, "timestamp": entry.timestamp}


def instance_status(paths: InstancePaths) -> dict[str, Any]:
    """One instance's status object (``car sync status --json``)."""
    runner = RunnerState.load(paths.runner_state)
    sent = HistoryLog(paths.history_sent).latest()
    received = HistoryLog(paths.history_received).latest()
    state = ApplyState(paths.sync_state)
    current = state.load()
    quarantine = Quarantine(paths.sync_state / C.QUARANTINE_FILE)
    return {
        "instance_id": paths.instance_id,
        "role": runner.role,
        "key": runner.key,
        "node_id": runner.node_id,
        "blob_store": runner.blob_store,
        "registry": runner.registry,
        "sync_disabled_reason": runner.sync_disabled_reason,
        "last_published": _summary(sent.sent() if sent else None),
        "last_applied": _summary(received.received() if received else None),
        "apply_state": current.state,
        "apply_error": current.error,
        "quarantine": [e.to_dict() for e in quarantine.entries()],
        "halt": state.halt_reason(),
        "records": runner.records,
        "lease": _lease(paths),
        "pinned": _pinned_cid(paths),
    }


def _lease(paths: InstancePaths) -> dict[str, Any] | None:
    """A provider's view of its key's lease (``sync/lease_keeper.py``), or None.

    ``held`` says whether this instance held it at its last tick; the holder fields name
    whoever did, with the time its lease ends (README, "One writer per key").
    """
    try:
        raw = json.loads((paths.sync_state / C.LEASE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) else None


def _pinned_cid(paths: InstancePaths) -> str | None:
    """The CID a restored consumer is pinned to (``car sync restore``), or None."""
    pin = load_pin(paths.sync_state)
    return pin.cid if pin is not None else None


def select_instances(data: DataDir, instance: str | None) -> list[InstancePaths]:
    """The named instance, or every instance in the data dir.

    Raises:
        KeyError: the named instance has no folder in this data dir.
    """
    if instance is None:
        return [data.instance(i) for i in data.instance_ids()]
    if instance not in data.instance_ids():
        raise KeyError(instance)
    return [data.instance(instance)]


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One history entry of one instance, as ``car sync history`` lists it."""

    instance_id: str
    direction: str  # C.HISTORY_SENT or C.HISTORY_RECEIVED
    entry: HistoryEntry

    @property
    def record(self) -> HistoryRecord:
        return self.entry.sent() if self.direction == C.HISTORY_SENT else self.entry.received()

    def to_dict(self) -> dict[str, Any]:
        """The entry as its writer wrote it (this or an older runner), tagged."""
        return {**self.entry.content, "instance_id": self.instance_id, "direction": self.direction}


def history_entries(
    instances: list[InstancePaths], *, sent: bool = True, received: bool = True
) -> list[HistoryRow]:
    """History entries of the given instances, oldest write first."""
    rows: list[HistoryRow] = []
    for paths in instances:
        wanted = [(C.HISTORY_SENT, paths.history_sent)] if sent else []
        if received:
            wanted.append((C.HISTORY_RECEIVED, paths.history_received))
        for direction, directory in wanted:
            rows.extend(
                HistoryRow(paths.instance_id, direction, entry)
                for entry in HistoryLog(directory).entries()
            )
    rows.sort(key=lambda row: row.entry.written_ns)
    return rows


def retry_instance(paths: InstancePaths) -> tuple[str | None, int]:
    """Clear the halt and the quarantine so the next tick tries again.

    Returns:
        (the halt reason that was cleared or None, number of quarantine entries cleared).
    """
    state = ApplyState(paths.sync_state)
    reason = state.halt_reason()
    state.clear_halt()
    quarantine = Quarantine(paths.sync_state / C.QUARANTINE_FILE)
    cleared = len(quarantine.entries())
    quarantine.clear()
    return reason, cleared
