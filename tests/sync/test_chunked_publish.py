"""The provider with ARCHIVE_FORMAT "chunked": capture, upload, record, failures, retirement.

Memory backends and fake containers (the real-parts runs are in
``test_chunked_end_to_end.py`` and ``tests/integration/test_replication.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path
from typing import Any

import pytest
from container_apps.errors import RegistryUnavailable
from container_apps.registries.memory import MemoryRegistry
from container_apps.stores.memory import MemoryBlobStore
from container_apps.sync import constants as C
from container_apps.sync.chunks.index import SnapshotIndex
from container_apps.sync.chunks.index_parse import parse_index
from container_apps.tests.support.faults import FaultyRegistry
from container_apps.tests.support.provider_rig import NOW, Rig, assert_clean, make_rig

KIB = 1024
FILES = 12
FILE_BYTES = 300 * KIB


def _data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    for n in range(FILES):
        (data / "sub" / f"f{n:02d}.bin").write_bytes(random.Random(n).randbytes(FILE_BYTES))
    (data / "notes.txt").write_text("notes\n" * 100)
    return data


def _rig(tmp_path: Path, **cfg: Any) -> Rig:
    _data(tmp_path)
    return make_rig(tmp_path, archive_format=C.ARCHIVE_FORMAT_CHUNKED, **cfg)


def _publish(rig: Rig, now: float = NOW, **request: Any) -> str:
    rig.request({"archive_paths": ["/app/data"], **request})
    outcome = rig.publisher.publish_pending(now)
    assert outcome is not None and outcome.status == "ok", rig.response()
    assert outcome.cid is not None
    return outcome.cid


def _memory(rig: Rig) -> MemoryBlobStore:
    store = rig.store.inner
    assert isinstance(store, MemoryBlobStore)
    return store


def _index(rig: Rig, cid: str) -> SnapshotIndex:
    blob = _memory(rig).stored(cid)
    assert blob is not None
    return parse_index(blob)


def _stored_bytes(rig: Rig) -> int:
    store = _memory(rig)
    return sum(len(store.stored(c) or b"") for c in store.cids())


def test_chunked_publish_records_the_index_and_uploads_after_the_restart(tmp_path: Path) -> None:
    rig = _rig(tmp_path)
    cid = _publish(rig)
    record = rig.record()
    manifest = record["manifest"]
    blob = _memory(rig).stored(cid)
    assert blob is not None
    index = parse_index(blob)
    assert record["cid"] == cid
    assert manifest["archive_format"] == "chunked"
    assert manifest["archive_sha256"] == hashlib.sha256(blob).hexdigest()
    assert manifest["members"] == len(index.entries) == FILES + 3  # data, sub, notes.txt
    assert manifest["unpacked_bytes"] == FILES * FILE_BYTES + len("notes\n" * 100)
    payloads = {(c.pack, c.offset): c.length for e in index.files() for c in e.chunks}
    assert manifest["archive_size_bytes"] == len(blob) + sum(payloads.values())
    assert rig.response()["archive_size_bytes"] == manifest["archive_size_bytes"]
    assert _memory(rig).cids() == {cid, *index.packs()}
    # stop, capture, start, and only then the uploads (packs first, the index last)
    assert rig.journal[:2] == ["stop", "start"] and set(rig.journal[2:]) == {"put"}
    puts = [args[0].name for op, args in rig.store.calls if op == "put"]
    assert puts[-1] == cid and set(puts[:-1]) == set(index.packs())
    assert_clean(rig)


def test_one_changed_file_uploads_about_that_file_and_retires_what_nothing_needs(
    tmp_path: Path,
) -> None:
    rig = _rig(tmp_path)
    first = _publish(rig)
    first_packs = set(_index(rig, first).packs())
    before = _stored_bytes(rig)
    os.truncate(rig.data / "sub" / "f03.bin", 0)
    (rig.data / "sub" / "f03.bin").write_bytes(random.Random(99).randbytes(FILE_BYTES))
    puts_before = rig.store.count("put")
    second = _publish(rig, NOW + 10)
    index = _index(rig, second)
    uploaded = [args[0] for op, args in rig.store.calls[-(rig.store.count("put") - puts_before) :]]
    assert len(uploaded) == 2  # one new pack, then the index
    # The store holds exactly what the kept index needs: the first index is retired,
    # and so is every pack only it referenced.
    assert _memory(rig).cids() == {second, *index.packs()}
    assert first not in _memory(rig).cids()
    assert first_packs & set(index.packs())  # unchanged chunks stayed where they were
    growth = _stored_bytes(rig) - before
    assert growth < FILE_BYTES + 16 * KIB, growth  # the file's bytes plus a small index
    sent = rig.history.entries()
    assert sent[0].data["deletion"]["deletion_succeeded"] is True
    assert sent[1].data["manifest"]["archive_format"] == "chunked"


def test_unchanged_files_are_not_read_again(tmp_path: Path, caplog: Any) -> None:
    rig = _rig(tmp_path)
    _publish(rig)
    (rig.data / "notes.txt").write_text("changed\n")
    caplog.set_level("INFO")
    _publish(rig, NOW + 10)
    assert f"{FILES + 1} files (1 re-read, {FILES} unchanged)" in caplog.text


def test_a_missing_previous_index_makes_a_full_and_correct_snapshot(tmp_path: Path) -> None:
    rig = _rig(tmp_path)
    first = _publish(rig)
    _memory(rig).delete(first, remote=True, local=True)  # gone from the store
    (rig.data / "notes.txt").write_text("changed\n")
    second = _publish(rig, NOW + 10)
    index = _index(rig, second)
    assert {e.path for e in index.files()} >= {"app/data/notes.txt", "app/data/sub/f00.bin"}
    for pack in index.packs():
        assert _memory(rig).stored(pack) is not None


def test_a_corrupt_previous_index_makes_a_full_snapshot(tmp_path: Path) -> None:
    rig = _rig(tmp_path)
    first = _publish(rig)
    _memory(rig).corrupt(first, b"not an index")
    second = _publish(rig, NOW + 10)
    assert second == first  # nothing changed: the same tree makes the same index bytes
    assert _memory(rig).stored(second) is not None


def test_a_tar_snapshot_before_is_retired_and_the_first_chunked_one_is_full(
    tmp_path: Path,
) -> None:
    _data(tmp_path)
    store = MemoryBlobStore(tmp_path / "shared-cache")
    tar_rig = make_rig(tmp_path, store=store)
    tar_cid = _publish(tar_rig)
    rig = make_rig(tmp_path, store=store, archive_format=C.ARCHIVE_FORMAT_CHUNKED)
    cid = _publish(rig, NOW + 10)
    assert store.cids() == {cid, *_index(rig, cid).packs()}
    assert tar_cid not in store.cids()


def test_a_failed_publish_deletes_its_index_and_new_packs_but_nothing_published(
    tmp_path: Path,
) -> None:
    registry = FaultyRegistry(MemoryRegistry())
    rig = _rig(tmp_path, registry=registry, publish_retry_seconds=0)
    first = _publish(rig)
    kept = _memory(rig).cids()
    (rig.data / "notes.txt").write_text("changed\n")
    registry.inner.hset = _down  # type: ignore[method-assign]
    rig.request({"archive_paths": ["/app/data"]})
    outcome = rig.publisher.publish_pending(NOW + 10)
    assert outcome is not None and outcome.status == "error"
    assert outcome.stage == C.STAGE_CHAINSTORE_PUBLISH
    assert _memory(rig).cids() == kept  # the first snapshot is whole, nothing else stays
    assert rig.record()["cid"] == first


def _down(*_args: Any) -> bool:
    raise RegistryUnavailable("registry down")


def test_a_symlink_fails_the_capture_and_uploads_nothing(tmp_path: Path) -> None:
    rig = _rig(tmp_path)
    os.symlink("/etc/passwd", rig.data / "sub" / "link")
    rig.request({"archive_paths": ["/app/data"]})
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.status == "error"
    assert outcome.stage == C.STAGE_ARCHIVE_BUILD
    assert "/app/data/sub/link" in rig.response()["error"]
    assert rig.containers.calls == ["stop", "start"]
    assert _memory(rig).cids() == set()
    assert_clean(rig)


def test_online_capture_reads_the_volume_without_a_stop(tmp_path: Path) -> None:
    rig = _rig(tmp_path, allow_online=True)
    cid = _publish(rig, runtime={"provider_capture": "online"})
    assert rig.containers.stops == 0 and rig.containers.starts == 0
    assert rig.response()["downtime_seconds"] == 0.0
    assert {e.path for e in _index(rig, cid).files()} >= {"app/data/notes.txt"}


def test_a_snapshot_over_max_archive_bytes_is_refused(tmp_path: Path) -> None:
    rig = _rig(tmp_path, max_archive_bytes=FILE_BYTES)
    rig.request({"archive_paths": ["/app/data"]})
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.stage == C.STAGE_ARCHIVE_BUILD
    assert "MAX_ARCHIVE_BYTES" in rig.response()["error"]
    assert _memory(rig).cids() == set()
    assert rig.containers.calls == ["stop", "start"]


def test_keep_snapshots_two_keeps_the_two_newest_and_their_packs(tmp_path: Path) -> None:
    rig = _rig(tmp_path, keep_snapshots=2)
    cids = []
    for n in range(3):
        changed = random.Random(100 + n).randbytes(FILE_BYTES)
        (rig.data / "sub" / f"f{n:02d}.bin").write_bytes(changed)
        cids.append(_publish(rig, NOW + 10 * n))
    needed = {cids[1], cids[2], *_index(rig, cids[1]).packs(), *_index(rig, cids[2]).packs()}
    assert _memory(rig).cids() == needed
    assert [e.data["deletion"]["deletion_succeeded"] for e in rig.history.entries()] == [
        True,
        None,
        None,
    ]


def test_a_restart_removes_a_staging_dir_left_by_a_crash(tmp_path: Path) -> None:
    rig = _rig(tmp_path)
    stale = rig.work / "snapshot-1.chunked" / "packs"
    stale.mkdir(parents=True)
    (stale / "partial").write_bytes(b"x")
    rig.publisher.recover()
    assert not (rig.work / "snapshot-1.chunked").exists()


def test_a_gc_killed_halfway_is_finished_by_the_next_publish_and_never_hurts_the_live_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MemoryBlobStore(tmp_path / "shared-cache")
    registry = MemoryRegistry()
    rig = _rig(tmp_path, store=store, registry=registry)
    first = _publish(rig)
    for n in range(3):  # three files change: the first index has packs only it needs
        (rig.data / "sub" / f"f{n:02d}.bin").write_bytes(
            random.Random(50 + n).randbytes(FILE_BYTES)
        )
    real_delete = store.delete

    def killed_at_the_index(cid: str, *, remote: bool, local: bool) -> None:
        if cid == first and remote:
            raise KeyboardInterrupt("kill -9 while retiring")  # not caught: the process dies
        real_delete(cid, remote=remote, local=local)

    monkeypatch.setattr(store, "delete", killed_at_the_index)
    rig.request({"archive_paths": ["/app/data"]})
    with pytest.raises(KeyboardInterrupt):
        rig.publisher.publish_pending(NOW + 10)
    monkeypatch.setattr(store, "delete", real_delete)
    second = rig.response()["cid"]
    assert json.loads(registry.hget(C.CHAINSTORE_HKEY, "key-1") or "")["cid"] == second
    live = _index(rig, second)
    assert all(store.stored(p) is not None for p in live.packs())  # the live one is whole
    assert first in store.cids()  # its index outlived the kill

    restarted = make_rig(tmp_path, store=store, registry=registry, archive_format="chunked")
    restarted.publisher.recover()
    (rig.data / "notes.txt").write_text("third\n")
    third = _publish(restarted, NOW + 20)
    assert store.cids() == {third, *_index(restarted, third).packs()}
    deletions = [e.data["deletion"]["deletion_succeeded"] for e in restarted.history.entries()]
    assert deletions == [True, True, None]


def test_keep_snapshots_applies_to_tar_snapshots_too(tmp_path: Path) -> None:
    _data(tmp_path)
    rig = make_rig(tmp_path, keep_snapshots=2)
    cids = []
    for n in range(3):
        (rig.data / "notes.txt").write_text(f"version {n}\n")
        cids.append(_publish(rig, NOW + 10 * n))
    assert _memory(rig).cids() == {cids[1], cids[2]}
