"""Upload order and the previous-snapshot loaders: unusable means a full capture."""

from __future__ import annotations

from pathlib import Path

import pytest
from container_apps.errors import StoreError, StoreUnavailable
from container_apps.stores.memory import MemoryBlobStore
from container_apps.sync.chunks.index import encode_index
from container_apps.sync.chunks.staged import fetch_previous, previous_from_blob, upload_staged
from container_apps.tests.support.chunk_helpers import (
    make_tree,
    sample_index,
    sources,
    volume,
    writer,
)
from container_apps.tests.support.faults import FaultyBlobStore


def test_upload_puts_packs_first_and_the_index_last(tmp_path: Path) -> None:
    root = volume(tmp_path)
    make_tree(root)
    staged = writer(tmp_path).write(sources(root))
    store = FaultyBlobStore(MemoryBlobStore(tmp_path / "cache"))
    upload_staged(staged, store)
    put = [args[0].name for name, args in store.calls if name == "put"]
    assert put == [*staged.pack_cids, staged.index_cid]
    assert store.inner.cids() == set(put)  # type: ignore[attr-defined]


def test_upload_refuses_a_staged_file_that_no_longer_matches_its_name(tmp_path: Path) -> None:
    root = volume(tmp_path)
    make_tree(root)
    staged = writer(tmp_path).write(sources(root))
    staged.pack_paths[0].write_bytes(b"tampered")
    with pytest.raises(StoreError) as info:
        upload_staged(staged, MemoryBlobStore(tmp_path / "cache"))
    assert "changed in staging" in str(info.value)


def test_previous_from_a_good_blob_is_the_parsed_index(tmp_path: Path) -> None:
    root = volume(tmp_path)
    make_tree(root)
    staged = writer(tmp_path).write(sources(root))
    previous = previous_from_blob(staged.index_cid, staged.index_path.read_bytes(), staged.facts)
    assert previous is not None and previous.index == staged.index
    assert previous.usable_facts() == staged.facts


@pytest.mark.parametrize("blob", [b"not an index", b"\x28\xb5\x2f\xfd broken"])
def test_previous_from_an_unusable_blob_is_none(blob: bytes) -> None:
    from container_apps.sync.chunks.index import blob_cid

    assert previous_from_blob(blob_cid(blob), blob, None) is None


def test_previous_whose_bytes_do_not_match_the_cid_is_none() -> None:
    blob = encode_index(sample_index())
    other = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    assert previous_from_blob(other, blob, None) is None


def test_fetch_previous_of_a_missing_or_foreign_blob_is_none(tmp_path: Path) -> None:
    store = MemoryBlobStore(tmp_path / "cache")
    missing = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    assert fetch_previous(store, missing, None) is None
    tar_like = tmp_path / "archive.tar.zst"
    tar_like.write_bytes(b"\x28\xb5\x2f\xfd" + b"\0" * 5000)
    assert fetch_previous(store, store.put(tar_like), None) is None
    good = tmp_path / "index"
    good.write_bytes(encode_index(sample_index()))
    cid = store.put(good)
    fetched = fetch_previous(store, cid, None)
    assert fetched is not None and fetched.index == sample_index()
    assert not (tmp_path / "cache" / cid).exists()  # the local copy was dropped


def test_fetch_previous_of_a_blob_too_big_for_an_index_is_none(tmp_path: Path) -> None:
    from container_apps.sync.chunks.index_parse import IndexLimits

    store = MemoryBlobStore(tmp_path / "cache")
    big = tmp_path / "big"
    big.write_bytes(b"x" * 5000)
    assert fetch_previous(store, store.put(big), None, IndexLimits(max_index_bytes=4000)) is None


def test_fetch_previous_lets_an_unreachable_store_be_retried(tmp_path: Path) -> None:
    store = FaultyBlobStore(MemoryBlobStore(tmp_path / "c"), {"get": [StoreUnavailable("down")]})
    with pytest.raises(StoreUnavailable):
        fetch_previous(store, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", None)
