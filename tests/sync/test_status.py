"""What `car sync status|history` read: runner.json and history rows as typed records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from container_apps.layout import DataDir, InstancePaths
from container_apps.sync.history import WRITE_STAMP, HistoryLog
from container_apps.sync.runner_state import RunnerState
from container_apps.sync.status import history_entries, instance_status

RUNNER_FIELDS = {
    "instance_id",
    "node_id",
    "role",
    "key",
    "blob_store",
    "registry",
    "sync_disabled_reason",
    "system_volume_error",
    "started_timestamp",
    "records",
}


@pytest.fixture
def paths(tmp_path: Path) -> InstancePaths:
    paths = DataDir(tmp_path / "data").instance("cons")
    paths.ensure()
    return paths


def test_runner_state_writes_its_fields_and_reads_back_equal(paths: InstancePaths) -> None:
    state = RunnerState(
        instance_id="cons",
        node_id="node-a",
        role="consumer",
        key="k",
        blob_store="file:///blobs",
        registry="sqlite:///r.sqlite",
        started_timestamp=5,
    )
    state.save(paths.runner_state)
    assert set(json.loads(paths.runner_state.read_text())) == RUNNER_FIELDS
    assert RunnerState.load(paths.runner_state) == state


@pytest.mark.parametrize("text", ["garbage", "[1]", '{"role": 5, "key": ["k"]}'])
def test_a_damaged_runner_json_shows_an_unknown_setup_never_an_error(
    paths: InstancePaths, text: str
) -> None:
    paths.runner_state.write_text(text)
    assert RunnerState.load(paths.runner_state) == RunnerState()
    status = instance_status(paths)
    assert (status["role"], status["key"], status["registry"]) == (None, None, None)


def test_status_reads_the_latest_entries_typed(paths: InstancePaths) -> None:
    log = HistoryLog(paths.history_received)
    log.append({"cid": "bafkreia", "version": 1, "applied_timestamp": 10})
    log.append({"cid": "bafkreib", "version": "2", "applied_timestamp": 20.5})
    assert instance_status(paths)["last_applied"] == {
        "cid": "bafkreib",
        "version": None,  # not a version: read as unknown
        "timestamp": 20.5,
    }


def test_history_rows_print_each_entry_as_its_writer_wrote_it(paths: InstancePaths) -> None:
    written = {"cid": "bafkreia", "version": 1, "older_runner_note": {"x": 1}, "durations": 3}
    HistoryLog(paths.history_sent).append(written)
    [row] = history_entries([paths])
    assert (row.instance_id, row.direction, row.record.cid) == ("cons", "sent", "bafkreia")
    shown = row.to_dict()
    assert WRITE_STAMP not in shown
    assert shown == {
        **written,
        "deletion": {"deleted_at": None, "deletion_succeeded": None, "deletion_error": None},
        "instance_id": "cons",
        "direction": "sent",
    }
