"""Encrypted chunked snapshots (docs/FORMAT.md, "Encryption at rest"): keyed chunk ids,
each chunk sealed on its own (ranged reads still work), the index sealed, nothing of the
plaintext or its hashes in the store, and damage or another key refused."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from container_apps.stores.memory import MemoryBlobStore
from container_apps.sync.chunks import constants as K
from container_apps.sync.chunks.index_parse import IndexInvalid, parse_index
from container_apps.sync.chunks.reader import ChunkCorrupt, ChunkedSnapshotReader
from container_apps.sync.chunks.staged import PreviousSnapshot, StagedSnapshot, upload_staged
from container_apps.sync.chunks.writer import ChunkedSnapshotWriter
from container_apps.sync.crypto.framing import MAGIC, Sealer
from container_apps.sync.crypto.keys import derive_keys
from container_apps.tests.support.chunk_helpers import make_tree, sources, tree_state, volume

SEALER = Sealer(derive_keys(b"s" * 32))
OTHER = Sealer(derive_keys(b"t" * 32))
ZSTD_MAGIC = bytes.fromhex("28b52ffd")


def _publish(
    tmp_path: Path, root: Path, store: MemoryBlobStore, name: str, prev: PreviousSnapshot | None
) -> StagedSnapshot:
    staged = ChunkedSnapshotWriter(tmp_path / name, sealer=SEALER).write(sources(root), prev)
    upload_staged(staged, store)
    return staged


def _stored(store: MemoryBlobStore) -> dict[str, bytes]:
    return {cid: store.stored(cid) or b"" for cid in store.cids()}


def test_sealed_snapshot_round_trips_and_the_store_sees_no_plaintext(tmp_path: Path) -> None:
    root = volume(tmp_path)
    make_tree(root)
    store = MemoryBlobStore(tmp_path / "cache")
    staged = _publish(tmp_path, root, store, "s1", None)
    assert staged.index.chunk_hash == K.CHUNK_HASH_HMAC_SHA256
    blobs = _stored(store)
    plain_digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*.txt")}
    for cid, data in blobs.items():
        assert ZSTD_MAGIC not in data, cid
        assert b"readme" not in data and b"docs/deep" not in data
        assert not any(d.encode() in data for d in plain_digests)
    assert blobs[staged.index_cid].startswith(MAGIC)
    index = parse_index(blobs[staged.index_cid], sealer=SEALER)
    out = tmp_path / "out"
    ChunkedSnapshotReader(store, sealer=SEALER).extract(index, out)
    assert tree_state(out / "app" / "data") == tree_state(root)


def test_a_sealed_index_needs_the_right_key(tmp_path: Path) -> None:
    root = volume(tmp_path)
    make_tree(root)
    store = MemoryBlobStore(tmp_path / "cache")
    staged = _publish(tmp_path, root, store, "s1", None)
    blob = staged.index_path.read_bytes()
    with pytest.raises(IndexInvalid, match=r"no SYNC\.ENCRYPTION_KEY_FILE"):
        parse_index(blob)
    with pytest.raises(IndexInvalid, match="wrong ENCRYPTION_KEY_FILE") as caught:
        parse_index(blob, sealer=OTHER)
    assert caught.value.wrong_key


def test_a_flipped_bit_in_a_sealed_pack_is_refused(tmp_path: Path) -> None:
    root = volume(tmp_path)
    make_tree(root)
    store = MemoryBlobStore(tmp_path / "cache")
    staged = _publish(tmp_path, root, store, "s1", None)
    pack = staged.pack_cids[0]
    data = bytearray(store.stored(pack) or b"")
    data[len(data) // 2] ^= 0x10
    store.corrupt(pack, bytes(data))
    with pytest.raises(ChunkCorrupt, match="fails authentication"):
        ChunkedSnapshotReader(store, sealer=SEALER).extract(staged.index, tmp_path / "out")


def test_an_unchanged_tree_dedups_under_keyed_ids(tmp_path: Path) -> None:
    root = volume(tmp_path)
    make_tree(root)
    store = MemoryBlobStore(tmp_path / "cache")
    first = _publish(tmp_path, root, store, "s1", None)
    (root / "new.txt").write_bytes(b"one more file")
    prev = PreviousSnapshot(first.index_cid, first.index, None)  # no facts: re-read all
    second = _publish(tmp_path, root, store, "s2", prev)
    assert second.stats.chunks_new == 1
    assert second.stats.stored_bytes_new < 200
