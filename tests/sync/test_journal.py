"""Journal files: plan written atomically, header round trip, malformed header detected."""

from __future__ import annotations

from pathlib import Path

import pytest
from container_apps.sync.journal import (
    KIND_FILE,
    STATE_COMMITTING,
    Journal,
    JournalHeader,
    PlannedOp,
)


def _op(i: int) -> PlannedOp:
    return PlannedOp(i, KIND_FILE, i, f"/app/data/{i}", f"/h/{i}", "/h", 3, 0o644, 1.5)


def test_plan_round_trips_in_order(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    with journal.plan_writer() as plan:
        for i in range(3):
            plan.write(_op(i).to_line())
    assert list(journal.ops()) == [_op(0), _op(1), _op(2)]


def test_failed_plan_write_leaves_no_plan_and_no_temp_file(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    with pytest.raises(RuntimeError), journal.plan_writer() as plan:
        plan.write(_op(0).to_line())
        raise RuntimeError("member invalid")
    assert list(tmp_path.iterdir()) == []


def test_header_round_trips_and_remove_clears_both_files(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    header = JournalHeader("id", "cid", 5, STATE_COMMITTING, 2, {"/h": "/h/.car-sync-id"}, "dig")
    with journal.plan_writer() as plan:
        plan.write(_op(0).to_line())
    journal.write_header(header)
    assert journal.read_header() == header
    journal.remove()
    assert journal.read_header() is None and not journal.has_plan()


def test_malformed_header_raises_value_error(tmp_path: Path) -> None:
    (tmp_path / "journal.json").write_text('{"apply_id": 1}')
    with pytest.raises(ValueError, match="malformed"):
        Journal(tmp_path).read_header()


@pytest.mark.parametrize(
    "text",
    [
        "[1, 2]",
        '{"apply_id": "id", "cid": "c", "version": "5", "state": "committing", "ops": 1}',
        '{"apply_id": "id", "cid": "c", "version": 5, "state": "done", "ops": 1}',
        '{"apply_id": "id", "cid": "c", "version": 5, "state": "committed", "ops": 1,'
        ' "backup_dirs": ["/h"]}',
    ],
)
def test_a_header_with_wrong_types_is_malformed_not_trusted(tmp_path: Path, text: str) -> None:
    (tmp_path / "journal.json").write_text(text)
    with pytest.raises(ValueError, match="malformed"):
        Journal(tmp_path).read_header()


def test_a_header_of_an_older_version_without_manifest_digest_reads(tmp_path: Path) -> None:
    text = '{"apply_id": "id", "cid": "c", "version": null, "state": "committing", "ops": 0}'
    (tmp_path / "journal.json").write_text(text)
    header = Journal(tmp_path).read_header()
    assert header == JournalHeader("id", "c", None, STATE_COMMITTING, 0)
    assert JournalHeader.from_dict(header.to_dict()) == header  # type: ignore[union-attr]


def test_a_header_missing_a_field_is_malformed(tmp_path: Path) -> None:
    (tmp_path / "journal.json").write_text(
        '{"apply_id": "id", "cid": "c", "state": "committing", "ops": 0}'
    )
    with pytest.raises(ValueError, match=r"malformed: bad field.*version"):
        Journal(tmp_path).read_header()
