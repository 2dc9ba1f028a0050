"""A chunked snapshot from a real provider applied by a real consumer (memory backends).

What is fetched and which files are written, local edits restored, changes made by the
app between staging and the stop, missing packs, rollback. Loop volumes and the
equivalence with a full tar apply: ``test_chunked_end_to_end.py``.
"""

from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from container_apps.registries.memory import MemoryRegistry
from container_apps.stores.memory import MemoryBlobStore
from container_apps.sync import applied_files, chunked_plan
from container_apps.sync import constants as C
from container_apps.sync.chunks.index_parse import parse_index
from container_apps.sync.consumer import ConsumerSettings, SnapshotConsumer
from container_apps.sync.paths import PathResolver
from container_apps.sync.record_source import RecordSource
from container_apps.sync.records import parse_record
from container_apps.tests.support.consumer_rig import leftovers
from container_apps.tests.support.fakes import FakeContainers
from container_apps.tests.support.faults import FaultyBlobStore
from container_apps.tests.support.provider_rig import NOW, Rig, make_rig
from container_apps.volumes.binding import VolumeBinding

LOG = logging.getLogger("test.chunked_apply")
KIB = 1024
FILES = 10
FILE_BYTES = 200 * KIB


@dataclass
class Side:
    consumer: SnapshotConsumer
    containers: FakeContainers
    volume: Path
    store: FaultyBlobStore
    state: Path

    def fetched_bytes(self) -> int:
        return sum(args[2] for op, args in self.store.calls if op == "get_range")


def _provider(tmp: Path, registry: MemoryRegistry, store: MemoryBlobStore) -> Rig:
    data = tmp / "p-data"
    (data / "sub").mkdir(parents=True)
    for n in range(FILES):
        (data / "sub" / f"f{n}.bin").write_bytes(random.Random(n).randbytes(FILE_BYTES))
    (data / "empty").write_bytes(b"")
    (data / "notes.txt").write_text("notes\n")
    os.chmod(data / "notes.txt", 0o600)
    return make_rig(
        tmp,
        store=store,
        registry=registry,
        data=data,
        archive_format=C.ARCHIVE_FORMAT_CHUNKED,
    )


def _consumer(tmp: Path, registry: MemoryRegistry, store: MemoryBlobStore, **kw: Any) -> Side:
    volume = tmp / "c-data"
    volume.mkdir()
    (volume / "local-only.txt").write_text("consumer's own")
    resolver = PathResolver([VolumeBinding("data", "legacy", volume, "/app/data")])
    settings = ConsumerSettings(tmp / "c-state", tmp / "c-control", tmp / "c-hist")
    settings.control_dir.mkdir()
    containers = FakeContainers()
    counted = FaultyBlobStore(store)
    source = RecordSource(registry, "key-1", 60.0, LOG)
    consumer = SnapshotConsumer(settings, source, counted, containers, resolver, LOG, **kw)
    return Side(consumer, containers, volume, counted, settings.sync_state_dir)


def _setup(tmp: Path, **kw: Any) -> tuple[Rig, Side, MemoryBlobStore]:
    registry, store = MemoryRegistry(), MemoryBlobStore(tmp / "blobs")
    return _provider(tmp, registry, store), _consumer(tmp, registry, store, **kw), store


def _publish(rig: Rig, now: float) -> str:
    rig.request({"archive_paths": ["/app/data"]})
    outcome = rig.publisher.publish_pending(now)
    assert outcome is not None and outcome.status == "ok", rig.response()
    assert outcome.cid is not None
    return outcome.cid


def _apply(side: Side, now: float) -> None:
    outcome = side.consumer.tick(now)
    assert outcome is not None and outcome.applied, outcome


@pytest.fixture(params=["racy", "trusted"])
def stat_trust(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test twice: with every stat racy (compared again, the case right after an
    apply) and with every stat trusted (no racy margin, the case long after one)."""
    if request.param == "trusted":
        monkeypatch.setattr(applied_files, "RACY_NS", 0)
        monkeypatch.setattr(chunked_plan, "RACY_NS", 0)
    return str(request.param)


def _inodes(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root)): p.stat().st_ino for p in sorted(root.rglob("*")) if p.is_file()
    }


def _same_tree(provider: Path, consumer: Path) -> None:
    for path in provider.rglob("*"):
        mine = consumer / path.relative_to(provider)
        assert mine.lstat().st_mtime_ns == path.lstat().st_mtime_ns, path
        if path.is_file():
            assert mine.read_bytes() == path.read_bytes(), path
            assert mine.stat().st_mode & 0o777 == (path.stat().st_mode & 0o777) | 0o644


def test_a_one_file_change_fetches_and_writes_only_that_file(
    tmp_path: Path, stat_trust: str
) -> None:
    rig, side, _ = _setup(tmp_path)
    _publish(rig, NOW)
    _apply(side, NOW + 1)
    _same_tree(rig.data, side.volume)
    assert (side.volume / "local-only.txt").read_text() == "consumer's own"
    first_fetch = side.fetched_bytes()
    assert first_fetch >= FILES * FILE_BYTES  # random data: everything came over
    before = _inodes(side.volume)

    (rig.data / "sub" / "f4.bin").write_bytes(random.Random(44).randbytes(FILE_BYTES))
    _publish(rig, NOW + 10)
    _apply(side, NOW + 11)
    _same_tree(rig.data, side.volume)
    after = _inodes(side.volume)
    rewritten = sorted(p for p in after if after[p] != before.get(p))
    assert rewritten == ["sub/f4.bin"]
    assert side.fetched_bytes() - first_fetch <= FILE_BYTES + 64  # its chunk, zstd framed
    assert leftovers(side.volume) == []
    assert not (side.state / C.STAGING_DIR).exists()


def test_a_file_the_consumer_edited_is_restored_even_when_the_snapshot_kept_it(
    tmp_path: Path,
    stat_trust: str,
) -> None:
    rig, side, _ = _setup(tmp_path)
    _publish(rig, NOW)
    _apply(side, NOW + 1)
    edited = side.volume / "sub" / "f2.bin"
    data = bytearray(edited.read_bytes())
    data[100] ^= 0xFF  # same size; the mtime set back as an app could
    st = edited.stat()
    edited.write_bytes(bytes(data))
    os.utime(edited, ns=(st.st_atime_ns, st.st_mtime_ns))
    (side.volume / "notes.txt").chmod(0o666)
    (rig.data / "sub" / "f7.bin").write_bytes(b"changed")
    _publish(rig, NOW + 10)
    _apply(side, NOW + 11)
    _same_tree(rig.data, side.volume)


def test_a_held_file_the_app_changes_before_the_stop_is_written(
    tmp_path: Path, stat_trust: str
) -> None:
    rig, side, _ = _setup(tmp_path)
    _publish(rig, NOW)
    _apply(side, NOW + 1)
    target = side.volume / "sub" / "f1.bin"
    side.containers.on_stop = lambda: target.write_bytes(b"written by the app meanwhile")
    (rig.data / "notes.txt").write_text("v2\n")
    _publish(rig, NOW + 10)
    _apply(side, NOW + 11)
    _same_tree(rig.data, side.volume)


def test_a_snapshot_whose_packs_were_deleted_is_quarantined_and_nothing_changes(
    tmp_path: Path,
) -> None:
    rig, side, store = _setup(tmp_path)
    _publish(rig, NOW)
    _apply(side, NOW + 1)
    (rig.data / "sub" / "f3.bin").write_bytes(b"new")
    cid = _publish(rig, NOW + 10)
    blob = store.stored(cid)
    assert blob is not None
    for pack in parse_index(blob).packs():
        store.delete(pack, remote=True, local=True)  # as a retention could
    before = {p: p.read_bytes() for p in side.volume.rglob("*") if p.is_file()}
    outcome = side.consumer.tick(NOW + 11)
    assert outcome is not None and not outcome.applied
    assert outcome.kind == "download" and outcome.stage == C.STAGE_R1FS_DOWNLOAD
    assert "is missing from the blob store" in (outcome.error or "")
    assert side.containers.stops == 1  # only the first apply's stop
    assert {p: p.read_bytes() for p in side.volume.rglob("*") if p.is_file()} == before
    record = parse_record(rig.registry.hget(C.CHAINSTORE_HKEY, "key-1") or "")
    assert side.consumer.quarantine.blocking(cid, record.manifest.digest(), NOW + 12) is not None
    assert not (side.state / C.STAGING_DIR).exists()


def test_a_commit_that_fails_halfway_is_rolled_back(tmp_path: Path) -> None:
    steps: list[int] = []

    def boom(index: int) -> None:
        steps.append(index)
        if len(steps) == 6:
            raise OSError(28, "No space left on device")

    registry, store = MemoryRegistry(), MemoryBlobStore(tmp_path / "blobs")
    rig = _provider(tmp_path, registry, store)
    side = _consumer(tmp_path, registry, store, on_step=boom)
    for n in range(FILES):
        (side.volume / f"f{n}.old").write_bytes(b"old")
    before = {
        str(p.relative_to(side.volume)): p.read_bytes()
        for p in side.volume.rglob("*")
        if p.is_file()
    }
    _publish(rig, NOW)
    outcome = side.consumer.tick(NOW + 1)
    assert outcome is not None and not outcome.applied and outcome.kind == "commit"
    after = {
        str(p.relative_to(side.volume)): p.read_bytes()
        for p in side.volume.rglob("*")
        if p.is_file()
    }
    assert after == before
    assert leftovers(side.volume) == []
    assert not (side.state / C.STAGING_DIR).exists()


def test_a_corrupt_index_is_refused_before_any_stop(tmp_path: Path) -> None:
    rig, side, store = _setup(tmp_path)
    cid = _publish(rig, NOW)
    store.corrupt(cid, b"\x28\xb5\x2f\xfdgarbage")
    outcome = side.consumer.tick(NOW + 1)
    assert outcome is not None and not outcome.applied and outcome.kind == "digest"
    assert side.containers.stops == 0


def test_a_runner_killed_mid_commit_is_rolled_back_at_the_next_start(tmp_path: Path) -> None:
    def killed(index: int) -> None:
        if index == 5:
            raise KeyboardInterrupt("kill -9 during the commit")  # nothing in-process runs

    registry, store = MemoryRegistry(), MemoryBlobStore(tmp_path / "blobs")
    rig = _provider(tmp_path, registry, store)
    side = _consumer(tmp_path, registry, store, on_step=killed)
    (side.volume / "sub").mkdir()
    (side.volume / "sub" / "f0.bin").write_bytes(b"the consumer's old f0")
    before = {
        str(p.relative_to(side.volume)): p.read_bytes()
        for p in side.volume.rglob("*")
        if p.is_file()
    }
    _publish(rig, NOW)
    with pytest.raises(KeyboardInterrupt):
        side.consumer.tick(NOW + 1)
    assert leftovers(side.volume)  # the backup dir of the interrupted commit

    containers = FakeContainers(running=False)  # a new runner, before its first start
    counted = FaultyBlobStore(store)
    restarted = Side(
        SnapshotConsumer(
            ConsumerSettings(side.state, tmp_path / "c-control", tmp_path / "c-hist"),
            RecordSource(registry, "key-1", 60.0, LOG),
            counted,
            containers,
            PathResolver([VolumeBinding("data", "legacy", side.volume, "/app/data")]),
            LOG,
        ),
        containers,
        side.volume,
        counted,
        side.state,
    )
    restarted.consumer.recover(NOW + 2)
    after = {
        str(p.relative_to(side.volume)): p.read_bytes()
        for p in side.volume.rglob("*")
        if p.is_file()
    }
    assert after == before and leftovers(side.volume) == []
    assert not (side.state / C.STAGING_DIR).exists()
    _apply(restarted, NOW + 3)  # and the snapshot then applies cleanly
    _same_tree(rig.data, side.volume)
