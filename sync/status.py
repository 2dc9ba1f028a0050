"""What ``car sync status`` and ``car sync history`` show, read from the data directory.

Plain functions over files the runner writes (``runner.json``, ``sync_history/``,
``sync_state/``), so an operator can inspect a stopped instance and the CLI needs no
running runner. Each status object carries at least the fields README "Inspecting" names.
"""

from __future__ import annotations

import json
from typing import Any

from ..layout import DataDir, InstancePaths
from . import constants as C
from .apply_state import ApplyState
from .history import WRITE_STAMP, HistoryLog
from .quarantine import Quarantine


def read_runner_state(paths: InstancePaths) -> dict[str, Any]:
    """The runner's self-description (role, key, backends), or {} if it never ran."""
    try:
        data = json.loads(paths.runner_state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _summary(entry_data: dict[str, Any] | None, timestamp_key: str) -> dict[str, Any] | None:
    if entry_data is None:
        return None
    return {
        "cid": entry_data.get("cid"),
        "version": entry_data.get("version"),
        "timestamp": entry_data.get(timestamp_key),
    }


def instance_status(paths: InstancePaths) -> dict[str, Any]:
    """One instance's status object (``car sync status --json``)."""
    runner = read_runner_state(paths)
    sent = HistoryLog(paths.history_sent).latest()
    received = HistoryLog(paths.history_received).latest()
    state = ApplyState(paths.sync_state)
    current = state.current() or {}
    quarantine = Quarantine(paths.sync_state / C.QUARANTINE_FILE)
    return {
        "instance_id": paths.instance_id,
        "role": runner.get("role"),
        "key": runner.get("key"),
        "node_id": runner.get("node_id"),
        "blob_store": runner.get("blob_store"),
        "registry": runner.get("registry"),
        "sync_disabled_reason": runner.get("sync_disabled_reason"),
        "last_published": _summary(sent.data if sent else None, "published_timestamp"),
        "last_applied": _summary(received.data if received else None, "applied_timestamp"),
        "apply_state": current.get("state"),
        "apply_error": current.get("error"),
        "quarantine": [e.to_dict() for e in quarantine.entries()],
        "halt": state.halt_reason(),
    }


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


def history_entries(
    instances: list[InstancePaths], *, sent: bool = True, received: bool = True
) -> list[dict[str, Any]]:
    """History entries of the given instances, oldest write first, each tagged with
    ``instance_id`` and ``direction``."""
    rows: list[tuple[int, dict[str, Any]]] = []
    for paths in instances:
        wanted = [(C.HISTORY_SENT, paths.history_sent)] if sent else []
        if received:
            wanted.append((C.HISTORY_RECEIVED, paths.history_received))
        for direction, directory in wanted:
            for entry in HistoryLog(directory).entries():
                data = {k: v for k, v in entry.data.items() if k != WRITE_STAMP}
                data["instance_id"] = paths.instance_id
                data["direction"] = direction
                rows.append((entry.written_ns, data))
    rows.sort(key=lambda row: row[0])
    return [data for _, data in rows]


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
