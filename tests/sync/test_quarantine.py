"""Quarantine: backoff 60 s x 2^(n-1) capped at 3600 s, keyed by (CID, manifest digest)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from container_apps.sync.quarantine import (
    CRASH_RETRIES,
    FAILURE_KINDS,
    Interruption,
    Quarantine,
    QuarantineEntry,
    backoff_seconds,
)

NOW = 1_764_400_000.0


def test_backoff_doubles_from_60s_and_caps_at_3600s() -> None:
    assert [backoff_seconds(n) for n in range(1, 9)] == [60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert backoff_seconds(10_000) == 3600


def test_entry_blocks_until_its_backoff_expires(tmp_path: Path) -> None:
    q = Quarantine(tmp_path / "quarantine.json")
    q.record_failure("cid1", "dig", kind="commit", error="boom", now=NOW)
    assert q.blocking("cid1", "dig", NOW + 59) is not None
    assert q.blocking("cid1", "dig", NOW + 60) is None


def test_repeated_failures_grow_the_backoff(tmp_path: Path) -> None:
    q = Quarantine(tmp_path / "quarantine.json")
    q.record_failure("cid1", "dig", kind="digest", error="x", now=NOW)
    entry = q.record_failure("cid1", "dig", kind="digest", error="x", now=NOW + 60)
    assert entry.failures == 2 and entry.retry_at == NOW + 60 + 120
    assert entry.first_failed_at == NOW


def test_key_includes_the_manifest_digest(tmp_path: Path) -> None:
    q = Quarantine(tmp_path / "quarantine.json")
    q.record_failure("cid1", "dig-a", kind="validation", error="x", now=NOW)
    assert q.blocking("cid1", "dig-b", NOW) is None


@pytest.mark.parametrize("kind", FAILURE_KINDS)
def test_every_failure_kind_is_persisted_across_instances(tmp_path: Path, kind: str) -> None:
    Quarantine(tmp_path / "q.json").record_failure(
        "c", "d", kind=kind, error="e", now=NOW, stage="s"
    )
    [entry] = Quarantine(tmp_path / "q.json").entries()
    assert (entry.kind, entry.stage, entry.error) == (kind, "s", "e")


def test_clear_by_cid_and_clear_all(tmp_path: Path) -> None:
    q = Quarantine(tmp_path / "q.json")
    q.record_failure("a", "d", kind="stop", error="e", now=NOW)
    q.record_failure("b", "d", kind="stop", error="e", now=NOW + 1)
    q.clear("a")
    assert [e.cid for e in q.entries()] == ["b"]
    q.clear()
    assert q.entries() == []


def test_damaged_file_starts_empty_instead_of_blocking_forever(tmp_path: Path) -> None:
    (tmp_path / "q.json").write_text("{broken")
    assert Quarantine(tmp_path / "q.json").entries() == []


def test_crash_interruptions_are_retried_at_once_then_count_as_a_failure(
    tmp_path: Path,
) -> None:
    q = Quarantine(tmp_path / "q.json")
    for n in range(1, CRASH_RETRIES + 1):
        assert q.record_interruption("c", "d", error="cut", now=NOW + n) is None
        assert q.blocking("c", "d", NOW + n) is None and q.entries() == []
        assert q.interruptions("c", "d") == n
    entry = q.record_interruption("c", "d", error="cut", now=NOW + 10)
    assert entry is not None and (entry.kind, entry.failures) == ("commit", 1)
    assert entry.retry_at == NOW + 10 + backoff_seconds(1)
    assert q.blocking("c", "d", NOW + 11) is not None


def test_interruptions_and_failures_survive_each_other_and_clear_together(
    tmp_path: Path,
) -> None:
    q = Quarantine(tmp_path / "q.json")
    q.record_interruption("c", "d", error="cut", now=NOW)
    q.record_failure("c", "d", kind="digest", error="x", now=NOW + 1)
    q.record_interruption("b", "d", error="cut", now=NOW + 2)
    again = Quarantine(tmp_path / "q.json")
    assert again.interruptions("c", "d") == 1 and again.entries()[0].kind == "digest"
    again.clear("c")
    assert again.interruptions("c", "d") == 0 and again.entries() == []
    assert again.interruptions("b", "d") == 1
    again.clear()
    assert again.interruptions("b", "d") == 0


def test_a_file_without_interruptions_still_loads(tmp_path: Path) -> None:
    Quarantine(tmp_path / "q.json").record_failure("c", "d", kind="stop", error="e", now=NOW)
    path = tmp_path / "q.json"
    path.write_text(path.read_text().replace('"interruptions": []', '"other": 1'))
    assert Quarantine(path).interruptions("c", "d") == 0
    assert [e.cid for e in Quarantine(path).entries()] == ["c"]


def test_an_entry_with_wrong_types_is_skipped_not_a_crash_at_every_tick(tmp_path: Path) -> None:
    path = tmp_path / "q.json"
    q = Quarantine(path)
    q.record_failure("good", "d", kind="digest", error="x", now=NOW)
    q.record_interruption("c", "d", error="cut", now=NOW)
    data = json.loads(path.read_text())
    bad = dict(data["entries"][0], cid="bad", retry_at="soon")
    data["entries"].append(bad)
    data["interruptions"].append(dict(data["interruptions"][0], cid="x", count="2"))
    path.write_text(json.dumps(data))
    again = Quarantine(path)
    assert again.blocking("bad", "d", NOW) is None
    assert [e.cid for e in again.entries()] == ["good"]
    assert again.interruptions("x", "d") == 0 and again.interruptions("c", "d") == 1


def test_quarantine_records_round_trip() -> None:
    entry = QuarantineEntry("c", "d", 2, "digest", None, "x", NOW, NOW + 1, NOW + 121)
    assert QuarantineEntry.from_dict(entry.to_dict()) == entry
    crash = Interruption("c", "d", 1, "cut", NOW)
    assert Interruption.from_dict(crash.to_dict()) == crash
