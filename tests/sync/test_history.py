"""History: file names, collisions, "latest", the deletion sub-record, exact fields.

docs/FORMAT.md, "Host-side layout" and "Sent history entry".
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from container_apps.sync.history import WRITE_STAMP, HistoryLog, empty_deletion
from container_apps.tests.support.consumer_rig import (
    build_snapshot,
    make_env,
    make_record,
    new_entries,
)
from container_apps.tests.support.provider_rig import NOW, make_rig
from container_apps.tests.support.spec_fields import RECEIVED_HISTORY_FIELDS, SENT_HISTORY_FIELDS


def test_file_name_is_padded_version_and_sanitised_cid_prefix(tmp_path: Path) -> None:
    log = HistoryLog(tmp_path)
    path = log.append({"cid": "Qm/../x.y-z_1234567", "version": 42})
    assert path.name == "0000000042__Qm____x_y_z_.json"
    assert path.parent == tmp_path


def test_name_collision_gets_a_numeric_suffix_and_never_overwrites(tmp_path: Path) -> None:
    log = HistoryLog(tmp_path)
    paths = [log.append({"cid": "bafkreiabcdefgh", "version": 7, "n": n}) for n in range(3)]
    assert [p.name for p in paths] == [
        "0000000007__bafkreiabcde.json",
        "0000000007__bafkreiabcde.1.json",
        "0000000007__bafkreiabcde.2.json",
    ]
    assert [json.loads(p.read_text())["n"] for p in paths] == [0, 1, 2]


def test_latest_is_the_most_recently_written_not_the_highest_version(tmp_path: Path) -> None:
    log = HistoryLog(tmp_path)
    log.append({"cid": "bafkreinew", "version": 2_000_000_000})
    log.append({"cid": "bafkreiold", "version": 5})  # back-dated, written later
    latest = log.latest()
    assert latest is not None and latest.cid == "bafkreiold"


def test_recording_a_deletion_does_not_make_an_entry_the_latest(tmp_path: Path) -> None:
    log = HistoryLog(tmp_path)
    log.append({"cid": "bafkreifirst", "version": 1})
    log.append({"cid": "bafkreisecond", "version": 2})
    first = log.entries()[0]
    updated = log.update_deletion(first, succeeded=True, error=None, at=123.0)
    assert updated.data["deletion"] == {
        "deleted_at": 123.0,
        "deletion_succeeded": True,
        "deletion_error": None,
    }
    latest = log.latest()
    assert latest is not None and latest.cid == "bafkreisecond"


def test_appends_in_one_clock_tick_keep_their_order(tmp_path: Path, mocker) -> None:
    mocker.patch("container_apps.sync.history.time.time_ns", return_value=1000)
    log = HistoryLog(tmp_path)
    for n in range(4):
        log.append({"cid": f"bafkrei{n}", "version": 9 - n})
    assert [e.cid for e in log.entries()] == [f"bafkrei{n}" for n in range(4)]


def test_new_entry_has_an_all_null_deletion_and_is_0644(tmp_path: Path) -> None:
    path = HistoryLog(tmp_path).append({"cid": "bafkreix", "version": 1})
    assert json.loads(path.read_text())["deletion"] == empty_deletion()
    assert os.stat(path).st_mode & 0o777 == 0o644


def test_sent_entry_has_exactly_the_spec_fields(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    rig.request({"archive_paths": ["/app/data"]})
    assert rig.publisher.publish_pending(NOW).status == "ok"  # type: ignore[union-attr]
    [entry] = rig.history.entries()
    assert set(entry.data) == SENT_HISTORY_FIELDS | {WRITE_STAMP}
    assert set(entry.data["durations"]) == {"archive", "upload", "publish"}
    assert entry.data["deletion"] == empty_deletion()


def test_received_entry_has_exactly_the_spec_fields(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    archive = build_snapshot(tmp_path / "s.tar.zst", new_entries())
    env.publish(archive, make_record(archive))
    outcome = env.consumer.tick(NOW)
    assert outcome is not None and outcome.applied and outcome.history_path
    data = json.loads(Path(outcome.history_path).read_text())
    assert set(data) == RECEIVED_HISTORY_FIELDS | {WRITE_STAMP}
    assert set(data["durations"]) == {"download", "prepare", "commit"}
    assert data["deletion"] == empty_deletion()
