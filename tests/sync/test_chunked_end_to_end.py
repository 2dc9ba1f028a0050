"""Chunked snapshots on real parts: loop volumes, file:// + sqlite, S3 + Redis.

The central proof: one provider tree goes through a sequence of changes; after each,
it is published twice (chunked, and tar.zst) and applied by two consumers whose loop
volumes start equal and get the same local edits. The chunked consumer applies
incrementally, the tar one in full; both volumes must then be the same tree (bytes,
types, modes, owners, mtimes), and the chunked one must have rewritten only the files
whose content or metadata differs. Tar keeps whole-second mtimes and chunked
nanoseconds, so the provider's tree is set to whole seconds after every change.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from container_apps.registries.factory import open_registry
from container_apps.registries.memory import MemoryRegistry
from container_apps.stores.factory import open_store
from container_apps.stores.memory import MemoryBlobStore
from container_apps.sync import constants as C
from container_apps.sync.consumer import ConsumerSettings, SnapshotConsumer
from container_apps.sync.paths import PathResolver
from container_apps.sync.record_source import RecordSource
from container_apps.tests.support.consumer_rig import leftovers
from container_apps.tests.support.fakes import FakeContainers
from container_apps.tests.support.parts import used
from container_apps.tests.support.provider_rig import NOW, Rig, make_rig
from container_apps.volumes.binding import VolumeBinding

pytestmark = [pytest.mark.loopdev]
LOG = logging.getLogger("test.chunked_e2e")
MiB = 1024 * 1024
T0 = 1_700_000_000


@dataclass
class Consumer:
    consumer: SnapshotConsumer
    containers: FakeContainers
    volume: Path


def _consumer(tmp: Path, name: str, volume: Path, store: Any, registry: Any) -> Consumer:
    resolver = PathResolver([VolumeBinding(name, "fixed", volume, "/app/data")])
    base = tmp / name
    settings = ConsumerSettings(base / "state", base / "control", base / "hist")
    settings.control_dir.mkdir(parents=True)
    containers = FakeContainers()
    source = RecordSource(registry, "key-1", 60.0, LOG)
    return Consumer(
        SnapshotConsumer(settings, source, store, containers, resolver, LOG), containers, volume
    )


def _loop(make_loop_volume: Any, name: str, size: str = "64M") -> Path:
    volume = make_loop_volume(name, size)
    volume.provision()
    mount: Path = volume.mount_point
    return mount


def _whole_seconds(root: Path) -> None:
    """Every mtime below and at ``root`` rounded down to a second, deepest first."""
    paths = [*sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True), root]
    for path in paths:
        st = path.lstat()
        ns = st.st_mtime_ns // 10**9 * 10**9
        os.utime(path, ns=(ns, ns), follow_symlinks=False)


def _state(root: Path) -> dict[str, tuple[Any, ...]]:
    """path -> (type, mode, uid, gid, mtime_ns, sha256) for the whole volume.

    The root's own mtime is left out: both applies create and remove their backup dir
    there after the snapshot's mtimes are set.
    """
    st = root.lstat()
    out: dict[str, tuple[Any, ...]] = {".": (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)}
    for path in root.rglob("*"):
        st = path.lstat()
        rel = str(path.relative_to(root))
        if stat.S_ISDIR(st.st_mode):
            kind, digest = "dir", ""
        else:
            kind, digest = "file", hashlib.sha256(path.read_bytes()).hexdigest()
        out[rel] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns, digest)
    return out


def _inodes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.lstat().st_ino for p in root.rglob("*") if p.is_file()}


def _seed(data: Path) -> None:
    rng = random.Random(7)
    (data / "db" / "old").mkdir(parents=True)
    (data / "docs").mkdir()
    (data / "db" / "big.bin").write_bytes(rng.randbytes(3 * MiB))
    for n in range(8):
        (data / "db" / f"part{n}.bin").write_bytes(rng.randbytes(100_000 + n))
    (data / "db" / "old" / "gone.txt").write_text("deleted on the provider later")
    (data / "docs" / "readme.txt").write_text("hello\n" * 5000)
    (data / "docs" / "empty").write_bytes(b"")
    (data / "docs" / "tool").write_bytes(b"#!/bin/sh\n")
    (data / "turns-into-dir").write_text("a file first")
    os.chmod(data / "docs" / "tool", 0o4755)  # setuid is stripped by both applies
    os.chmod(data / "db" / "part1.bin", 0o600)  # raised to 0644 by both
    os.chmod(data / "docs", 0o750)


def _step_changes(data: Path) -> None:
    """One file rewritten, one appended, one added, one removed, a mode, an mtime."""
    (data / "db" / "part3.bin").write_bytes(random.Random(33).randbytes(100_003))
    with open(data / "docs" / "readme.txt", "a") as handle:
        handle.write("one more line\n")
    (data / "docs" / "new.txt").write_text("new file")
    (data / "db" / "old" / "gone.txt").unlink()  # overlay: consumers keep theirs
    os.chmod(data / "db" / "part5.bin", 0o700)  # applied as 0744
    os.utime(data / "db" / "part6.bin", ns=(T0 * 10**9, T0 * 10**9))


def _step_big_and_shape(data: Path) -> None:
    """A byte in the middle of the big file; a file replaced by a directory."""
    with open(data / "db" / "big.bin", "r+b") as handle:
        handle.seek(1_500_000)
        handle.write(b"\xff")
    (data / "turns-into-dir").unlink()
    (data / "turns-into-dir").mkdir()
    (data / "turns-into-dir" / "inside.txt").write_text("now a directory")


def _local_edits(volume: Path) -> None:
    """The consumers' apps edit a snapshot file (same size, mtime put back) and add one."""
    target = volume / "db" / "part2.bin"
    st = target.stat()
    data = bytearray(target.read_bytes())
    data[10] ^= 0x55
    target.write_bytes(bytes(data))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    (volume / "docs" / "readme.txt").chmod(0o666)
    (volume / "local-only.txt").write_text("the consumer's own")
    os.utime(volume / "local-only.txt", ns=(T0 * 10**9, T0 * 10**9))


def _publish(rig: Rig, now: float) -> str:
    rig.request({"archive_paths": ["/app/data"]})
    outcome = rig.publisher.publish_pending(now)
    assert outcome is not None and outcome.status == "ok", rig.response()
    assert outcome.cid is not None
    return outcome.cid


def _apply(side: Consumer, now: float) -> None:
    outcome = side.consumer.tick(now)
    assert outcome is not None and outcome.applied, outcome


def test_chunked_incremental_applies_equal_full_tar_applies_on_loop_volumes(
    tmp_path: Path, make_loop_volume: Any
) -> None:
    data = _loop(make_loop_volume, "prov")
    _seed(data)
    _whole_seconds(data)
    bindings = [VolumeBinding("prov", "fixed", data, "/app/data")]
    chunk_store = open_store(f"file://{tmp_path / 'blobs'}", cache_dir=tmp_path / "cache")
    chunk_registry = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    tar_store, tar_registry = MemoryBlobStore(tmp_path / "tar-cache"), MemoryRegistry()
    for rig_dir in ("pc", "pt"):
        (tmp_path / rig_dir).mkdir()
    chunked_rig = make_rig(
        tmp_path / "pc",
        store=chunk_store,
        registry=chunk_registry,
        data=data,
        bindings=bindings,
        archive_format=C.ARCHIVE_FORMAT_CHUNKED,
    )
    tar_rig = make_rig(
        tmp_path / "pt", store=tar_store, registry=tar_registry, data=data, bindings=bindings
    )
    chunked = _consumer(tmp_path, "cc", _loop(make_loop_volume, "cc"), chunk_store, chunk_registry)
    tar = _consumer(tmp_path, "ct", _loop(make_loop_volume, "ct"), tar_store, tar_registry)

    steps: list[tuple[Callable[[Path], None] | None, bool, set[str]]] = [
        (None, False, set()),  # first snapshot: every file is new
        (_step_changes, True, {"db/part3.bin", "docs/readme.txt", "docs/new.txt",
                                "db/part5.bin", "db/part6.bin", "db/part2.bin"}),
        (_step_big_and_shape, False, {"db/big.bin", "turns-into-dir/inside.txt"}),
    ]  # fmt: skip
    for number, (change, edit, rewritten) in enumerate(steps):
        now = NOW + 100 * number
        if change is not None:
            change(data)
            _whole_seconds(data)
        if edit:
            for side in (chunked, tar):
                _local_edits(side.volume)
        before = _inodes(chunked.volume)
        _publish(chunked_rig, now)
        _publish(tar_rig, now)
        _apply(chunked, now + 1)
        _apply(tar, now + 1)
        assert _state(chunked.volume) == _state(tar.volume), f"step {number}"
        if number:
            after = _inodes(chunked.volume)
            changed = {p for p in after if before.get(p) != after[p]}
            assert changed == rewritten, f"step {number}"
        assert leftovers(chunked.volume) == [] and leftovers(tar.volume) == []
    assert (chunked.volume / "db" / "old" / "gone.txt").exists()  # overlay
    assert (chunked.volume / "local-only.txt").read_text() == "the consumer's own"


def test_a_changed_file_in_a_volume_too_small_for_a_second_copy_applies(
    tmp_path: Path, make_loop_volume: Any
) -> None:
    """Free space is counted on what is written: a 1-file change fits a full volume."""
    data = tmp_path / "data"
    data.mkdir()
    for n in range(20):
        (data / f"f{n:02d}.bin").write_bytes(random.Random(n).randbytes(MiB))
    store = MemoryBlobStore(tmp_path / "blobs")
    registry = MemoryRegistry()
    rig = make_rig(
        tmp_path, store=store, registry=registry, data=data, archive_format=C.ARCHIVE_FORMAT_CHUNKED
    )
    side = _consumer(tmp_path, "c", _loop(make_loop_volume, "c", "32M"), store, registry)
    _publish(rig, NOW)
    _apply(side, NOW + 1)  # 20 MiB of 32: a full second copy would not fit
    (data / "f07.bin").write_bytes(random.Random(77).randbytes(MiB))
    _publish(rig, NOW + 10)
    _apply(side, NOW + 11)
    assert (side.volume / "f07.bin").read_bytes() == (data / "f07.bin").read_bytes()


@pytest.mark.s3
@pytest.mark.redis
def test_chunked_provider_to_consumer_on_s3_and_redis(
    tmp_path: Path, make_loop_volume: Any, s3_store_url: str, redis_registry_url: str
) -> None:
    used("s3")
    used("redis")
    data = _loop(make_loop_volume, "prov")
    _seed(data)
    bindings = [VolumeBinding("prov", "fixed", data, "/app/data")]
    provider_store = open_store(s3_store_url, cache_dir=tmp_path / "p-cache")
    consumer_store = open_store(s3_store_url, cache_dir=tmp_path / "c-cache")
    rig = make_rig(
        tmp_path,
        store=provider_store,
        registry=open_registry(redis_registry_url),
        data=data,
        bindings=bindings,
        archive_format=C.ARCHIVE_FORMAT_CHUNKED,
    )
    side = _consumer(
        tmp_path,
        "c",
        _loop(make_loop_volume, "c"),
        consumer_store,
        open_registry(redis_registry_url),
    )
    _publish(rig, NOW)
    _apply(side, NOW + 1)
    before = _inodes(side.volume)
    (data / "db" / "part4.bin").write_bytes(b"changed on the provider")
    _publish(rig, NOW + 10)
    _apply(side, NOW + 11)
    after = _inodes(side.volume)
    assert {p for p in after if before[p] != after[p]} == {"db/part4.bin"}
    for path in data.rglob("*"):
        if path.is_file():
            assert (side.volume / path.relative_to(data)).read_bytes() == path.read_bytes()
