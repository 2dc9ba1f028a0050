"""pending_report.json: the report an apply owes, saved before its stop and read back."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from container_apps.stores.memory import MemoryBlobStore
from container_apps.sync import constants as C
from container_apps.sync.apply_report import ApplyReporter, PendingReport
from container_apps.sync.consumer import ConsumerSettings
from container_apps.sync.records import Manifest, SyncRecord
from container_apps.sync.state_records import Durations

LOG = logging.getLogger("test.apply_report")
RECORD = SyncRecord(
    cid="bafkreiabc",
    version=7,
    timestamp=7.5,
    node_id="node-a",
    manifest=Manifest(archive_paths=("/app/data",), archive_format="tar.zst", archive_size_bytes=3),
)


def _reporter(tmp_path: Path) -> ApplyReporter:
    settings = ConsumerSettings(tmp_path / "state", tmp_path / "control", tmp_path / "history")
    return ApplyReporter(settings, MemoryBlobStore(tmp_path / "cache"), LOG)


def test_pending_report_round_trips_through_its_file(tmp_path: Path) -> None:
    reporter = _reporter(tmp_path)
    reporter.begin(RECORD, Durations(0.5, 0.25), 100.0, True)
    pending = reporter.pending()
    assert pending == PendingReport(RECORD, Durations(0.5, 0.25), 100.0, True, 0)
    assert PendingReport.from_dict(json.loads(json.dumps(pending.to_dict()))) == pending


@pytest.mark.parametrize(
    "change",
    [
        {"history_mark": float("inf")},
        {"history_mark": "3"},
        {"was_running": "yes"},
        {"stopped_timestamp": None},
        {"durations": {"download": "slow", "prepare": 0}},
        {"record": {"cid": 5}},
    ],
)
def test_a_damaged_pending_report_is_dropped_never_raised(
    tmp_path: Path, change: dict[str, object]
) -> None:
    reporter = _reporter(tmp_path)
    reporter.begin(RECORD, Durations(0.5, 0.25), 100.0, True)
    data = {**json.loads(reporter.pending_path.read_text()), **change}
    reporter.pending_path.write_text(json.dumps(data))
    assert reporter.pending() is None
    assert not reporter.pending_path.exists()
    assert reporter.finish_recovered(RECORD.cid, 101.0, 102.0) is None


def test_an_unparseable_pending_report_is_dropped(tmp_path: Path) -> None:
    reporter = _reporter(tmp_path)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / C.PENDING_REPORT_FILE).write_text("{broken")
    assert reporter.pending() is None
