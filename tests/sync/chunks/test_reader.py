"""ChunkedSnapshotReader: byte-identical trees, only needed chunks, corrupt or missing refused."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from container_apps.stores.base import BlobStore
from container_apps.stores.local import FileBlobStore
from container_apps.stores.memory import MemoryBlobStore
from container_apps.sync import constants as C
from container_apps.sync.chunks.index import IndexEntry, SnapshotIndex
from container_apps.sync.chunks.reader import ChunkCorrupt, ChunkedSnapshotReader, PackMissing
from container_apps.sync.chunks.staged import PreviousSnapshot, StagedSnapshot, upload_staged
from container_apps.tests.support.chunk_helpers import (
    make_tree,
    sources,
    tree_state,
    volume,
    writer,
)
from container_apps.tests.support.faults import FaultyBlobStore
from container_apps.tests.support.random_data import MiB, random_bytes


@pytest.fixture(params=["memory", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "memory":
        return MemoryBlobStore(tmp_path / "cache")
    return FileBlobStore.from_url(f"file://{tmp_path}/blobs", cache_dir=tmp_path / "cache")


def published(tmp_path: Path, root: Path, store: BlobStore, name: str = "s1") -> StagedSnapshot:
    staged = writer(tmp_path, name).write(sources(root))
    upload_staged(staged, store)
    return staged


def test_round_trip_gives_the_same_bytes_modes_and_mtimes(tmp_path: Path, store: BlobStore) -> None:
    root = volume(tmp_path)
    make_tree(root)
    staged = published(tmp_path, root, store)
    out = tmp_path / "out"
    stats = ChunkedSnapshotReader(store).extract(staged.index, out)
    assert tree_state(out / "app" / "data") == tree_state(root)
    assert stats.files_written == 5 and stats.dirs_made == 5
    assert stats.bytes_written == staged.index.unpacked_bytes()
    assert not list(out.rglob(".car-part-*"))


def test_only_wanted_files_are_fetched_and_written(tmp_path: Path, store: BlobStore) -> None:
    root = volume(tmp_path)
    make_tree(root)
    staged = published(tmp_path, root, store)
    out = tmp_path / "out"
    wanted = "app/data/docs/readme.txt"
    stats = ChunkedSnapshotReader(store).extract(staged.index, out, lambda e: e.path == wanted)
    readme = next(e for e in staged.index.files() if e.path == wanted)
    assert stats.files_written == 1
    assert stats.chunks_fetched == len(readme.chunks)
    assert stats.bytes_fetched == sum(c.length for c in readme.chunks)
    assert (out / wanted).read_bytes() == (root / "docs" / "readme.txt").read_bytes()
    assert not (out / "app/data/big.txt").exists()
    assert (out / "app/data/empty-dir").is_dir()  # directories are always made


def test_back_to_back_chunks_are_fetched_with_one_range_read(tmp_path: Path) -> None:
    root = volume(tmp_path)
    for n in range(200):
        (root / f"s{n:03d}").write_bytes(random_bytes(2000 + n, seed=n))
    inner = MemoryBlobStore(tmp_path / "cache")
    staged = published(tmp_path, root, inner)
    spy = FaultyBlobStore(inner)
    stats = ChunkedSnapshotReader(spy).extract(staged.index, tmp_path / "out")
    assert stats.ranges_fetched == spy.count("get_range") == 1
    assert stats.chunks_fetched == 200
    assert tree_state(tmp_path / "out" / "app" / "data") == tree_state(root)


def test_range_reads_are_capped(tmp_path: Path) -> None:
    root = volume(tmp_path)
    (root / "big").write_bytes(random_bytes(12 * MiB))
    store = MemoryBlobStore(tmp_path / "cache")
    staged = published(tmp_path, root, store)
    stats = ChunkedSnapshotReader(store, max_range_bytes=2 * MiB + 1).extract(
        staged.index, tmp_path / "out"
    )
    assert stats.ranges_fetched >= 6
    assert (tmp_path / "out/app/data/big").read_bytes() == (root / "big").read_bytes()


def test_a_corrupt_chunk_is_refused_and_its_file_not_left_behind(tmp_path: Path) -> None:
    root = volume(tmp_path)
    make_tree(root)
    store = MemoryBlobStore(tmp_path / "cache")
    staged = published(tmp_path, root, store)
    big = next(e for e in staged.index.files() if e.path == "app/data/big.txt")
    ref = big.chunks[-1]
    pack = bytearray(store._blobs[ref.pack])
    pack[ref.offset + ref.length // 2] ^= 0xFF
    store.corrupt(ref.pack, bytes(pack))
    out = tmp_path / "out"
    with pytest.raises(ChunkCorrupt) as info:
        ChunkedSnapshotReader(store).extract(staged.index, out, lambda e: e is big)
    assert info.value.stage == C.STAGE_R1FS_DOWNLOAD
    assert (info.value.pack, info.value.path) == (ref.pack, "app/data/big.txt")
    assert "/app/data/big.txt" in str(info.value)
    assert not (out / big.path).exists() and not list(out.rglob(".car-part-*"))


def test_a_chunk_whose_digest_does_not_match_is_refused(tmp_path: Path) -> None:
    root = volume(tmp_path)
    (root / "a").write_bytes(random_bytes(1000, seed=1))
    (root / "b").write_bytes(random_bytes(1000, seed=2))
    store = MemoryBlobStore(tmp_path / "cache")
    staged = published(tmp_path, root, store)
    a, b = list(staged.index.files())
    swapped = replace(a, chunks=(replace(b.chunks[0], digest=a.chunks[0].digest),))
    index = SnapshotIndex(staged.index.roots, (staged.index.entries[0], swapped))
    with pytest.raises(ChunkCorrupt) as info:
        ChunkedSnapshotReader(store).extract(index, tmp_path / "out")
    assert "digest" in str(info.value)


def test_a_range_past_the_end_of_its_pack_is_a_corrupt_chunk(tmp_path: Path) -> None:
    root = volume(tmp_path)
    (root / "a").write_bytes(random_bytes(1000))
    store = MemoryBlobStore(tmp_path / "cache")
    staged = published(tmp_path, root, store)
    entry = next(staged.index.files())
    moved = replace(entry, chunks=(replace(entry.chunks[0], offset=10_000),))
    index = SnapshotIndex(staged.index.roots, (staged.index.entries[0], moved))
    with pytest.raises(ChunkCorrupt) as info:
        ChunkedSnapshotReader(store).extract(index, tmp_path / "out")
    assert "past the end" in str(info.value)


def test_a_missing_pack_is_a_clear_specific_error(tmp_path: Path, store: BlobStore) -> None:
    root = volume(tmp_path)
    make_tree(root)
    staged = published(tmp_path, root, store)
    gone = staged.index.packs()[0]
    store.delete(gone, remote=True, local=True)
    with pytest.raises(PackMissing) as info:
        ChunkedSnapshotReader(store).extract(staged.index, tmp_path / "out")
    assert info.value.pack == gone
    assert info.value.stage == C.STAGE_R1FS_DOWNLOAD
    assert f"pack {gone}" in str(info.value) and "missing from the blob store" in str(info.value)


def test_incremental_snapshot_reads_back_as_the_new_tree(tmp_path: Path, store: BlobStore) -> None:
    root = volume(tmp_path)
    make_tree(root)
    first = published(tmp_path, root, store)
    (root / "docs" / "readme.txt").write_bytes(b"changed")
    (root / "new.bin").write_bytes(random_bytes(3 * MiB, seed=77))
    prev = PreviousSnapshot(first.index_cid, first.index, first.facts)
    second = writer(tmp_path, "s2").write(sources(root), prev)
    upload_staged(second, store)
    ChunkedSnapshotReader(store).extract(second.index, tmp_path / "out")
    assert tree_state(tmp_path / "out" / "app" / "data") == tree_state(root)


def test_setuid_bits_never_reach_staging(tmp_path: Path) -> None:
    store = MemoryBlobStore(tmp_path / "cache")
    index = SnapshotIndex(("x",), (IndexEntry("x", "dir", 0o7777, 0),))
    ChunkedSnapshotReader(store).extract(index, tmp_path / "out")
    assert (tmp_path / "out" / "x").stat().st_mode & 0o7777 == 0o777
