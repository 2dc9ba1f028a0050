"""History entries and last_apply.json as typed records: exact fields, round trip, tolerant read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from container_apps.sync.history import WRITE_STAMP, HistoryLog, empty_deletion
from container_apps.sync.records import Manifest, SyncRecord, SyncRequest
from container_apps.sync.state_records import (
    Deletion,
    Durations,
    LastApply,
    ReceivedEntry,
    SentDurations,
    SentEntry,
)
from container_apps.tests.support.spec_fields import (
    LAST_APPLY_FIELDS,
    RECEIVED_HISTORY_FIELDS,
    SENT_HISTORY_FIELDS,
)

RECORD = SyncRecord(
    cid="bafkreiabc",
    version=1764300000,
    timestamp=1764300000.12,
    node_id="node-a",
    manifest=Manifest(
        archive_paths=("/app/data",), archive_format="tar.zst", archive_size_bytes=123
    ),
    metadata={"epoch": 1},
)
REQUEST = SyncRequest(
    archive_paths=("/app/data",),
    metadata={"epoch": 1},
    request_id="job-42",
    requested_paths=("/app/data/",),
)


def _sent() -> SentEntry:
    durations = SentDurations(archive=0.61, upload=0.08, publish=None)
    return SentEntry.published(RECORD, REQUEST, ack=True, durations=durations, downtime=0.84)


def _received(*, recovered: bool = False) -> ReceivedEntry:
    return ReceivedEntry.applied(
        RECORD,
        applied_at=1764300007.9,
        extracted_paths=["/app/data"],
        durations=Durations(0.05, 0.4, None if recovered else 0.3),
        downtime=0.9000004,
        recovered=recovered,
    )


def test_sent_entry_writes_exactly_the_spec_fields_and_reads_back_equal() -> None:
    entry = _sent()
    data = entry.to_dict()
    assert set(data) == SENT_HISTORY_FIELDS
    assert data["request"] == {
        "archive_paths": ["/app/data/"],
        "metadata": {"epoch": 1},
        "runtime": REQUEST.runtime,
        "request_id": "job-42",
    }
    assert data["durations"] == {"archive": 0.61, "upload": 0.08, "publish": None}
    assert data["deletion"] == empty_deletion()
    assert SentEntry.from_dict(json.loads(json.dumps(data))) == entry


@pytest.mark.parametrize("recovered", [False, True])
def test_received_entry_writes_exactly_the_spec_fields_and_reads_back_equal(
    recovered: bool,
) -> None:
    entry = _received(recovered=recovered)
    data = entry.to_dict()
    extra = {"finished_by_recovery"} if recovered else set()
    assert set(data) == RECEIVED_HISTORY_FIELDS | extra
    assert data["downtime_seconds"] == 0.9
    assert data["durations"]["commit"] == (None if recovered else 0.3)
    assert ReceivedEntry.from_dict(json.loads(json.dumps(data))) == entry


def test_last_apply_writes_exactly_the_spec_fields_and_reads_back_equal() -> None:
    last = LastApply.applied(RECORD, applied_at=5.0)
    data = last.to_dict()
    assert set(data) == LAST_APPLY_FIELDS
    assert (data["cid"], data["applied_timestamp"]) == ("bafkreiabc", 5.0)
    assert LastApply.from_dict(data) == last


def test_unknown_fields_of_another_runner_are_kept_and_written_back() -> None:
    data = {**_received().to_dict(), "older_runner_note": {"x": 1}}
    entry = ReceivedEntry.from_dict(data)
    assert entry.extra == {"older_runner_note": {"x": 1}}
    assert entry.to_dict() == data


def test_an_older_entry_missing_fields_reads_with_defaults() -> None:
    entry = SentEntry.from_dict({"cid": "bafkreiold", "version": 3})
    assert (entry.cid, entry.version, entry.published_timestamp) == ("bafkreiold", 3, None)
    assert entry.deletion == Deletion() and entry.durations == SentDurations()
    assert entry.request == {} and entry.archive_size is None
    assert set(entry.to_dict()) == SENT_HISTORY_FIELDS


def test_damaged_fields_read_as_their_defaults_never_raise() -> None:
    damaged = {
        "cid": 7,
        "version": "12",
        "applied_timestamp": True,
        "metadata": [1],
        "manifest": "x",
        "extracted_paths": ["/a", 3],
        "durations": {"download": "slow", "commit": None},
        "downtime_seconds": float("nan"),
        "deletion": {"deletion_succeeded": "yes", "deleted_at": 1},
    }
    entry = ReceivedEntry.from_dict(damaged)
    assert (entry.cid, entry.version, entry.applied_timestamp) == ("", None, None)
    assert (entry.metadata, entry.manifest, entry.extracted_paths) == ({}, {}, ())
    assert entry.durations == Durations(0.0, 0.0, None)
    assert entry.downtime_seconds is None
    assert entry.deletion == Deletion(deleted_at=1) and not entry.deletion.retired
    assert Deletion.from_dict("not an object") == Deletion()


def test_history_log_writes_a_typed_entry_and_reads_it_back_typed(tmp_path: Path) -> None:
    log = HistoryLog(tmp_path)
    path = log.append(_sent())
    assert path.name == "1764300000__bafkreiabc.json"
    [entry] = log.entries()
    assert set(entry.data) == SENT_HISTORY_FIELDS | {WRITE_STAMP}
    assert entry.sent() == _sent()
    assert WRITE_STAMP not in entry.content


def test_recording_a_deletion_keeps_every_other_field_as_written(tmp_path: Path) -> None:
    written = {"cid": "bafkreia", "version": "not a number", "older_runner_note": 1}
    (tmp_path / "0000000000__bafkreia.json").write_text(json.dumps(written))
    log = HistoryLog(tmp_path)
    [entry] = log.entries()
    updated = log.update_deletion(entry, succeeded=False, error="gone", at=9.0)
    assert updated.deletion == Deletion(9.0, False, "gone") and not updated.deletion.retired
    on_disk = json.loads(entry.path.read_text())
    assert (on_disk["version"], on_disk["older_runner_note"]) == ("not a number", 1)
