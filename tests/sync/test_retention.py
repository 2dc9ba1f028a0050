"""Retire every older, not yet retired CID; record outcomes; retry failures.

README, "Retirement".
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from container_apps.errors import StoreUnavailable
from container_apps.stores.memory import MemoryBlobStore
from container_apps.sync.history import HistoryLog
from container_apps.sync.retention import RetireOutcome, UnrecordedCids, retire_superseded
from container_apps.tests.support.faults import FaultyBlobStore

LOG = logging.getLogger("test.retention")


@pytest.fixture
def store(tmp_path: Path) -> FaultyBlobStore:
    return FaultyBlobStore(MemoryBlobStore(tmp_path / "cache"))


def _put(store: FaultyBlobStore, tmp_path: Path, text: str) -> str:
    src = tmp_path / f"{text}.bin"
    src.write_text(text)
    return store.put(src)


def _history(tmp_path: Path, cids: list[str]) -> HistoryLog:
    log = HistoryLog(tmp_path / "sent")
    for n, cid in enumerate(cids):
        log.append({"cid": cid, "version": 100 + n})
    return log


def test_deletes_every_older_cid_but_the_kept_one(store, tmp_path) -> None:
    a, b, c = (_put(store, tmp_path, t) for t in "abc")
    history = _history(tmp_path, [a, b, c])
    out = retire_superseded(history, store, c, remote=True, local=True, now=5.0, log=LOG)
    assert out == [RetireOutcome(a, True, None), RetireOutcome(b, True, None)]
    assert store.inner.cids() == {c}
    deletions = [e.data["deletion"] for e in history.entries()]
    assert (
        deletions[:2]
        == [{"deleted_at": 5.0, "deletion_succeeded": True, "deletion_error": None}] * 2
    )
    assert deletions[2]["deletion_succeeded"] is None


def test_passes_remote_and_local_flags_through(store, tmp_path) -> None:
    a, b = _put(store, tmp_path, "a"), _put(store, tmp_path, "b")
    retire_superseded(
        _history(tmp_path, [a, b]), store, b, remote=False, local=True, now=1, log=LOG
    )
    assert store.calls == [
        ("put", (tmp_path / "a.bin",)),
        ("put", (tmp_path / "b.bin",)),
        ("delete", (a, False, True)),
    ]
    assert a in store.inner.cids()  # consumer mode never deletes the remote blob


def test_failed_deletion_is_recorded_and_retried_next_time(store, tmp_path) -> None:
    a, b = _put(store, tmp_path, "a"), _put(store, tmp_path, "b")
    history = _history(tmp_path, [a, b])
    flaky = FaultyBlobStore(store.inner, {"delete": [StoreUnavailable("offline")]})
    [first] = retire_superseded(history, flaky, b, remote=True, local=True, now=1, log=LOG)
    assert first.succeeded is False and "offline" in (first.error or "")
    assert history.entries()[0].data["deletion"]["deletion_succeeded"] is False
    flaky.assert_all_faults_fired()
    [again] = retire_superseded(history, flaky, b, remote=True, local=True, now=2, log=LOG)
    assert again.succeeded is True and store.inner.cids() == {b}
    assert retire_superseded(history, store, b, remote=True, local=True, now=3, log=LOG) == []


def test_entries_with_the_kept_cid_are_never_deleted(store, tmp_path) -> None:
    a = _put(store, tmp_path, "a")
    history = _history(tmp_path, [a, a])
    assert retire_superseded(history, store, a, remote=True, local=True, now=1, log=LOG) == []
    assert store.count("delete") == 0


def test_never_raises_when_history_update_fails(store, tmp_path, mocker) -> None:
    a, b = _put(store, tmp_path, "a"), _put(store, tmp_path, "b")
    history = _history(tmp_path, [a, b])
    mocker.patch.object(history, "update_deletion", side_effect=OSError("read-only"))
    out = retire_superseded(history, store, b, remote=True, local=True, now=1, log=LOG)
    assert out == [RetireOutcome(a, True, None)]


def test_never_raises_when_history_is_unreadable(store, tmp_path, mocker) -> None:
    history = HistoryLog(tmp_path / "sent")
    mocker.patch.object(history, "entries", side_effect=OSError("gone"))
    assert retire_superseded(history, store, "x", remote=True, local=True, now=1, log=LOG) == []


def test_unrecorded_cids_survive_a_new_object_and_are_retired(store, tmp_path) -> None:
    a, b = _put(store, tmp_path, "a"), _put(store, tmp_path, "b")
    path = tmp_path / "state" / "unrecorded_cids.json"
    UnrecordedCids(path, LOG).add(a)
    again = UnrecordedCids(path, LOG)  # a restarted provider
    assert again.cids == {a}
    again.retire(store, keep=b)
    assert store.inner.cids() == {b}
    assert UnrecordedCids(path, LOG).cids == frozenset()


def test_unrecorded_cid_kept_in_memory_when_state_dir_is_unwritable(store, tmp_path) -> None:
    a, b = _put(store, tmp_path, "a"), _put(store, tmp_path, "b")
    (tmp_path / "state").write_text("a file where the directory should be")
    unrecorded = UnrecordedCids(tmp_path / "state" / "unrecorded_cids.json", LOG)
    unrecorded.add(a)  # logged, not raised
    assert unrecorded.cids == {a}
    unrecorded.retire(store, keep=b)
    assert store.inner.cids() == {b} and unrecorded.cids == frozenset()


def test_failed_retirement_of_unrecorded_cid_is_kept_for_next_time(tmp_path) -> None:
    store = FaultyBlobStore(
        MemoryBlobStore(tmp_path / "cache"), {"delete": [StoreUnavailable("down")]}
    )
    a, b = _put(store, tmp_path, "a"), _put(store, tmp_path, "b")
    path = tmp_path / "unrecorded_cids.json"
    unrecorded = UnrecordedCids(path, LOG)
    unrecorded.add(a)
    unrecorded.retire(store, keep=b)
    assert UnrecordedCids(path, LOG).cids == {a}
    unrecorded.retire(store, keep=b)
    assert store.inner.cids() == {b} and UnrecordedCids(path, LOG).cids == frozenset()
