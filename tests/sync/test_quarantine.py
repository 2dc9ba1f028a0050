"""Quarantine: backoff 60 s x 2^(n-1) capped at 3600 s, keyed by (CID, manifest digest)."""

from __future__ import annotations

from pathlib import Path

import pytest
from container_apps.sync.quarantine import FAILURE_KINDS, Quarantine, backoff_seconds

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
