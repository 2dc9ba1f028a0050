"""The whole chunked path on a real S3 service (SeaweedFS on 127.0.0.1): write, upload,
read back, then an incremental snapshot that uploads only the changed file's pack."""

from __future__ import annotations

from pathlib import Path

import pytest
from container_apps.stores.factory import open_store
from container_apps.sync.chunks.reader import ChunkedSnapshotReader, PackMissing
from container_apps.sync.chunks.staged import fetch_previous, upload_staged
from container_apps.tests.support.chunk_helpers import (
    make_tree,
    sources,
    tree_state,
    volume,
    writer,
)
from container_apps.tests.support.fixtures_servers import S3Server
from container_apps.tests.support.random_data import MiB, random_bytes

pytestmark = pytest.mark.s3


def _keys(s3_server: S3Server, url: str) -> set[str]:
    bucket = url.split("://", 1)[1].split("/", 1)[0]
    listed = s3_server.client().list_objects_v2(Bucket=bucket)
    return {o["Key"].rsplit("/", 1)[-1] for o in listed.get("Contents", [])}


def test_write_upload_read_and_an_incremental_snapshot_on_s3(
    s3_store_url: str, s3_server: S3Server, tmp_path: Path
) -> None:
    store = open_store(s3_store_url, cache_dir=tmp_path / "cache")
    root = volume(tmp_path)
    make_tree(root)
    for n in range(20):
        (root / f"f{n:02d}.bin").write_bytes(random_bytes(MiB, seed=n))
    first = writer(tmp_path, "s1").write(sources(root))
    upload_staged(first, store)
    assert _keys(s3_server, s3_store_url) == {first.index_cid, *first.pack_cids}

    ChunkedSnapshotReader(store).extract(first.index, tmp_path / "out1")
    assert tree_state(tmp_path / "out1" / "app" / "data") == tree_state(root)

    (root / "f07.bin").write_bytes(random_bytes(MiB, seed=700))
    previous = fetch_previous(store, first.index_cid, first.facts)
    assert previous is not None and previous.usable_facts() == first.facts
    second = writer(tmp_path, "s2").write(sources(root), previous)
    assert (second.stats.files_read, second.stats.bytes_new) == (1, MiB)
    upload_staged(second, store)
    assert _keys(s3_server, s3_store_url) == {
        first.index_cid,
        second.index_cid,
        *first.pack_cids,
        *second.pack_cids,
    }
    ChunkedSnapshotReader(store).extract(second.index, tmp_path / "out2")
    assert tree_state(tmp_path / "out2" / "app" / "data") == tree_state(root)

    store.delete(second.pack_cids[0], remote=True, local=True)
    with pytest.raises(PackMissing) as info:
        ChunkedSnapshotReader(store).extract(second.index, tmp_path / "out3")
    assert info.value.pack == second.pack_cids[0]
    assert info.value.path == "app/data/f07.bin"
