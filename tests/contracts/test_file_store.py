"""FileBlobStore specifics: the <dir>/<cid> layout, the shared file, atomic puts."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from container_apps.errors import StoreError
from container_apps.stores import blobfiles
from container_apps.stores.cid import cid_for_file
from container_apps.stores.local import FileBlobStore
from container_apps.tests.support.random_data import write_random


@pytest.fixture
def store(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore.from_url(f"file://{tmp_path}/blobs", cache_dir=tmp_path / "cache")


def test_layout_is_one_file_per_blob_named_by_its_cid(store: FileBlobStore, tmp_path: Path) -> None:
    src = write_random(tmp_path / "a.bin", 1000, b"a")
    cid = store.put(src)
    assert sorted(os.listdir(tmp_path / "blobs")) == [cid]
    blob = tmp_path / "blobs" / cid
    assert blob.read_bytes() == src.read_bytes()
    assert stat.S_IMODE(blob.stat().st_mode) == 0o644


def test_get_returns_the_shared_file_and_delete_local_keeps_it(
    store: FileBlobStore, tmp_path: Path
) -> None:
    cid = store.put(write_random(tmp_path / "a.bin", 1000, b"a"))
    other_runner = FileBlobStore.from_url(f"file://{tmp_path}/blobs", cache_dir=tmp_path / "c2")
    path = other_runner.get(cid)
    assert path == tmp_path / "blobs" / cid
    other_runner.delete(cid, remote=False, local=True)
    assert path.exists()
    assert store.get(cid) == path
    store.delete(cid, remote=True, local=False)
    assert not path.exists()


def test_put_of_a_directory_fails_and_leaves_no_temp_file(
    store: FileBlobStore, tmp_path: Path
) -> None:
    with pytest.raises(StoreError) as info:
        store.put(tmp_path)
    assert str(tmp_path) in str(info.value)
    assert os.listdir(tmp_path / "blobs") == []


def test_put_failing_at_fsync_leaves_neither_blob_nor_temp_file(
    store: FileBlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = write_random(tmp_path / "a.bin", 3_000_000, b"a")

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(blobfiles.os, "fsync", broken_fsync)
    with pytest.raises(StoreError) as info:
        store.put(src)
    assert "No space left" in str(info.value)
    assert os.listdir(tmp_path / "blobs") == []


def test_relative_url_is_refused_with_an_example(tmp_path: Path) -> None:
    from container_apps.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        FileBlobStore.from_url("file://blobs", cache_dir=tmp_path)
    assert "file:///" in str(info.value)


def test_uncreatable_directory_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(StoreError) as info:
        FileBlobStore.from_url(f"file://{tmp_path}/f/blobs", cache_dir=tmp_path / "c")
    assert "STORAGE.BLOBS" in str(info.value)


def test_cid_of_the_stored_file_matches_its_name(store: FileBlobStore, tmp_path: Path) -> None:
    cid = store.put(write_random(tmp_path / "a.bin", 5000, b"z"))
    assert cid_for_file(tmp_path / "blobs" / cid) == cid
