"""The BlobStore contract (stores/base.py), one test per guarantee, on every backend.

The in-memory store is a parameter too, which keeps it honest (G8). Each backend also
needs three small test adapters below: write raw bytes under an id (to corrupt a blob
or plant a foreign one, as another tool would) and name where its local copy lives.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from container_apps.errors import BlobCorrupt, BlobNotFound, BlobTooLarge, StoreError
from container_apps.stores.base import BlobStore
from container_apps.stores.cid import cid_for_file, sha256_file
from container_apps.stores.local import FileBlobStore
from container_apps.stores.memory import MemoryBlobStore
from container_apps.tests.support.random_data import MiB, write_random


def _plant_raw(store: Any, blob_id: str, data: bytes) -> None:
    """Write ``data`` under ``blob_id`` directly in the backend's layout (bypassing put)."""
    if isinstance(store, MemoryBlobStore):
        store.add(blob_id, data)
    elif isinstance(store, FileBlobStore):
        (store.directory / blob_id).write_bytes(data)
    else:  # S3BlobStore: overwrite the object with boto3, as a broken service would
        import boto3

        client = boto3.client("s3", endpoint_url=store.config.endpoint_url, region_name="us-east-1")
        client.put_object(Bucket=store.config.bucket, Key=store.key_for(blob_id), Body=data)


def _local_copy(store: Any, blob_id: str) -> Path:
    """Where ``get`` leaves this node's copy."""
    if isinstance(store, FileBlobStore):
        return store.directory / blob_id
    return Path(store.cache_dir) / blob_id


def _stored_bytes(store: Any, blob_id: str) -> bytes | None:
    """What the backend itself holds under ``blob_id`` (None: nothing), read around ``get``."""
    if isinstance(store, MemoryBlobStore):
        return store.stored(blob_id)
    if isinstance(store, FileBlobStore):
        path = store.directory / blob_id
        return path.read_bytes() if path.exists() else None
    import boto3

    client = boto3.client("s3", endpoint_url=store.config.endpoint_url, region_name="us-east-1")
    try:
        body: bytes = client.get_object(Bucket=store.config.bucket, Key=store.key_for(blob_id))[
            "Body"
        ].read()
    except client.exceptions.NoSuchKey:
        return None
    return body


@pytest.fixture(params=["memory", "file", pytest.param("s3", marks=pytest.mark.s3)])
def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    cache = tmp_path / "cache"
    if request.param == "memory":
        return MemoryBlobStore(cache)
    if request.param == "file":
        return FileBlobStore.from_url(f"file://{tmp_path}/blobs", cache_dir=cache)
    from container_apps.stores.s3 import S3BlobStore

    return S3BlobStore.from_url(request.getfixturevalue("s3_store_url"), cache_dir=cache)


@pytest.fixture
def small_file(tmp_path: Path) -> Path:
    return write_random(tmp_path / "small.bin", 300_000, b"small")


def test_put_returns_raw_sha256_cidv1_of_the_bytes(blob_store: BlobStore, small_file: Path) -> None:
    cid = blob_store.put(small_file)
    assert cid.startswith("bafkrei")
    assert cid == cid_for_file(small_file)


@pytest.mark.slow
def test_round_trip_of_50_mib_file_gives_identical_bytes(
    blob_store: BlobStore, tmp_path: Path
) -> None:
    src = write_random(tmp_path / "big.bin", 50 * MiB, b"big")
    cid = blob_store.put(src)
    got = blob_store.get(cid)
    assert got != src
    assert os.path.getsize(got) == 50 * MiB
    assert sha256_file(got) == sha256_file(src)


def test_put_and_get_report_progress_up_to_the_total(blob_store: BlobStore, tmp_path: Path) -> None:
    src = write_random(tmp_path / "p.bin", 9 * MiB + 7, b"progress")
    puts: list[tuple[int, int | None]] = []
    gets: list[tuple[int, int | None]] = []
    cid = blob_store.put(src, progress=lambda done, total: puts.append((done, total)))
    blob_store.get(cid, progress=lambda done, total: gets.append((done, total)))
    for calls in (puts, gets):
        assert calls, "progress was never called"
        assert calls[-1] == (9 * MiB + 7, 9 * MiB + 7)
        assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_get_unknown_cid_raises_blob_not_found(blob_store: BlobStore, tmp_path: Path) -> None:
    unknown = cid_for_file(write_random(tmp_path / "never-put.bin", 10, b"x"))
    with pytest.raises(BlobNotFound) as info:
        blob_store.get(unknown)
    assert info.value.blob_id == unknown
    assert not _local_copy(blob_store, unknown).exists()


def test_delete_unknown_cid_is_a_no_op(blob_store: BlobStore, small_file: Path) -> None:
    unknown = cid_for_file(small_file)
    blob_store.delete(unknown, remote=True, local=True)
    blob_store.delete(unknown, remote=True, local=True)
    with pytest.raises(BlobNotFound):
        blob_store.get(unknown)


def test_delete_remote_twice_then_get_raises_blob_not_found(
    blob_store: BlobStore, small_file: Path
) -> None:
    cid = blob_store.put(small_file)
    blob_store.delete(cid, remote=True, local=True)
    blob_store.delete(cid, remote=True, local=True)
    with pytest.raises(BlobNotFound):
        blob_store.get(cid)


def test_corrupt_blob_raises_blob_corrupt_and_deletes_only_the_local_download(
    blob_store: BlobStore, small_file: Path
) -> None:
    cid = blob_store.put(small_file)
    _plant_raw(blob_store, cid, b"not the original bytes")
    with pytest.raises(BlobCorrupt) as info:
        blob_store.get(cid)
    assert info.value.blob_id == cid
    assert "corrupt" in str(info.value)
    # A reader never deletes shared or remote data: one consumer's bad read (or an
    # untrusted record) must not remove the blob for every runner. Its provider heals it.
    assert _stored_bytes(blob_store, cid) == b"not the original bytes"
    if not isinstance(blob_store, FileBlobStore):  # file://: the local copy IS the blob
        assert not _local_copy(blob_store, cid).exists()
    with pytest.raises(BlobCorrupt):
        blob_store.get(cid)  # still there, still refused: not BlobNotFound


def test_put_after_corruption_heals_the_blob(blob_store: BlobStore, small_file: Path) -> None:
    cid = blob_store.put(small_file)
    _plant_raw(blob_store, cid, b"garbage")
    assert blob_store.put(small_file) == cid
    assert sha256_file(blob_store.get(cid)) == sha256_file(small_file)


def test_concurrent_puts_of_same_content_give_one_cid_and_intact_blob(
    blob_store: BlobStore, tmp_path: Path
) -> None:
    src = write_random(tmp_path / "same.bin", 9 * MiB, b"same")  # above the multipart threshold
    results: list[str] = []
    errors: list[BaseException] = []

    def put() -> None:
        try:
            results.append(blob_store.put(src))
        except BaseException as exc:  # collected, re-checked below
            errors.append(exc)

    threads = [threading.Thread(target=put) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == 6
    assert set(results) == {cid_for_file(src)}
    assert sha256_file(blob_store.get(results[0])) == sha256_file(src)


def test_foreign_id_is_verified_against_the_given_sha256(
    blob_store: BlobStore, tmp_path: Path
) -> None:
    data = b"archive written by another tool"
    _plant_raw(blob_store, "foreign-archive.tar.zst", data)
    good = hashlib.sha256(data).hexdigest()
    path = blob_store.get("foreign-archive.tar.zst", sha256=good)
    assert path.read_bytes() == data


def test_foreign_id_with_wrong_sha256_raises_blob_corrupt_and_keeps_the_blob(
    blob_store: BlobStore,
) -> None:
    _plant_raw(blob_store, "foreign-2", b"some bytes")
    with pytest.raises(BlobCorrupt):
        blob_store.get("foreign-2", sha256="0" * 64)
    # A record naming another sync set's blob with a wrong digest deletes nothing shared.
    assert _stored_bytes(blob_store, "foreign-2") == b"some bytes"
    if not isinstance(blob_store, FileBlobStore):
        assert not _local_copy(blob_store, "foreign-2").exists()


def test_foreign_id_without_sha256_cannot_be_verified(blob_store: BlobStore) -> None:
    _plant_raw(blob_store, "foreign-3", b"some bytes")
    with pytest.raises(StoreError) as info:
        blob_store.get("foreign-3")
    assert not isinstance(info.value, BlobCorrupt | BlobNotFound)
    assert "cannot verify" in str(info.value)


@pytest.mark.parametrize("bad_id", ["../escape", "a/b", ".hidden", "", "x" * 300, "sp ace"])
@pytest.mark.parametrize("call", ["get", "delete"])
def test_unsafe_ids_are_rejected(blob_store: BlobStore, bad_id: str, call: str) -> None:
    op: Callable[[], object] = (
        (lambda: blob_store.get(bad_id, sha256="0" * 64))
        if call == "get"
        else (lambda: blob_store.delete(bad_id, remote=True, local=True))
    )
    with pytest.raises(StoreError) as info:
        op()
    assert "invalid blob id" in str(info.value)


def test_put_of_missing_source_raises_store_error(blob_store: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        blob_store.put(tmp_path / "does-not-exist")


def test_describe_names_the_backend(blob_store: BlobStore) -> None:
    assert blob_store.describe().startswith(f"{blob_store.scheme}://")


def test_get_refuses_a_blob_over_max_bytes_before_transferring_it(
    blob_store: BlobStore, tmp_path: Path
) -> None:
    src = write_random(tmp_path / "big.bin", 256 * 1024)
    cid = blob_store.put(src)
    with pytest.raises(BlobTooLarge) as caught:
        blob_store.get(cid, max_bytes=1000)
    assert (caught.value.size, caught.value.limit) == (256 * 1024, 1000)
    # Nothing was downloaded into this node's cache, and the blob itself was not deleted.
    if not isinstance(blob_store, FileBlobStore):  # file://: the local copy IS the blob
        assert not _local_copy(blob_store, cid).exists()
    assert blob_store.get(cid, max_bytes=256 * 1024).read_bytes() == src.read_bytes()


def test_check_of_a_usable_store_passes_and_stores_nothing(
    blob_store: BlobStore, small_file: Path
) -> None:
    blob_store.check()
    cid = blob_store.put(small_file)
    blob_store.check()
    assert blob_store.get(cid).read_bytes() == small_file.read_bytes()


# --- get_range: byte ranges of a stored blob (what chunked snapshots read) --------------


@pytest.fixture
def range_blob(blob_store: BlobStore, tmp_path: Path) -> tuple[str, bytes]:
    src = write_random(tmp_path / "ranged.bin", 3 * MiB + 123, b"range")
    return blob_store.put(src), src.read_bytes()


@pytest.mark.parametrize(
    ("offset", "length"), [(0, 1), (0, 3 * MiB + 123), (MiB - 7, MiB + 20), (3 * MiB + 122, 1)]
)
def test_get_range_returns_exactly_those_bytes(
    blob_store: BlobStore, range_blob: tuple[str, bytes], offset: int, length: int
) -> None:
    cid, data = range_blob
    assert blob_store.get_range(cid, offset, length) == data[offset : offset + length]


def test_get_range_leaves_no_local_copy(
    blob_store: BlobStore, range_blob: tuple[str, bytes]
) -> None:
    cid, _ = range_blob
    blob_store.get_range(cid, 10, 100)
    if not isinstance(blob_store, FileBlobStore):  # file://: the local copy IS the blob
        assert not _local_copy(blob_store, cid).exists()


def test_get_range_of_unknown_cid_raises_blob_not_found(
    blob_store: BlobStore, tmp_path: Path
) -> None:
    unknown = cid_for_file(write_random(tmp_path / "never-put.bin", 10, b"x"))
    with pytest.raises(BlobNotFound) as info:
        blob_store.get_range(unknown, 0, 5)
    assert info.value.blob_id == unknown


@pytest.mark.parametrize(
    ("offset", "length"), [(3 * MiB + 100, 24), (3 * MiB + 123, 1), (10 * MiB, 5)]
)
def test_get_range_past_the_end_raises_store_error_not_short_data(
    blob_store: BlobStore, range_blob: tuple[str, bytes], offset: int, length: int
) -> None:
    cid, _ = range_blob
    with pytest.raises(StoreError) as info:
        blob_store.get_range(cid, offset, length)
    assert not isinstance(info.value, BlobNotFound)
    assert "past the end" in str(info.value)


@pytest.mark.parametrize(("offset", "length"), [(-1, 5), (0, 0), (0, -3)])
def test_get_range_refuses_a_negative_offset_or_empty_length(
    blob_store: BlobStore, range_blob: tuple[str, bytes], offset: int, length: int
) -> None:
    cid, _ = range_blob
    with pytest.raises(StoreError) as info:
        blob_store.get_range(cid, offset, length)
    assert "invalid range" in str(info.value)


@pytest.mark.parametrize("bad_id", ["../escape", "a/b", ".hidden", ""])
def test_get_range_rejects_unsafe_ids(blob_store: BlobStore, bad_id: str) -> None:
    with pytest.raises(StoreError) as info:
        blob_store.get_range(bad_id, 0, 1)
    assert "invalid blob id" in str(info.value)


def _temp_dir_and_prefix(store: Any) -> tuple[Path, str]:
    """Where the backend writes temp files, and their name prefix (stores/tempfiles.py)."""
    if isinstance(store, FileBlobStore):
        return store.directory, ".put-"
    return Path(store.cache_dir), ".get-"


def test_sweep_local_removes_abandoned_temp_files_and_keeps_ones_being_written(
    blob_store: BlobStore, small_file: Path
) -> None:
    cid = blob_store.put(small_file)
    directory, prefix = _temp_dir_and_prefix(blob_store)
    directory.mkdir(parents=True, exist_ok=True)
    dead = directory / f"{prefix}killed.tmp"  # its writer is gone: nobody holds its lock
    dead.write_bytes(b"partial")
    live = directory / f"{prefix}in-flight.tmp"
    with open(live, "wb") as writer:  # another process's put or download, still running
        fcntl.flock(writer.fileno(), fcntl.LOCK_EX)
        removed = blob_store.sweep_local()
        assert not dead.exists()
        assert live.exists()
        assert dead.name in removed and live.name not in removed
    assert blob_store.get(cid).read_bytes() == small_file.read_bytes()


def test_sweep_local_keeps_the_kept_copy_and_never_deletes_a_stored_blob(
    blob_store: BlobStore, tmp_path: Path
) -> None:
    applied = blob_store.put(write_random(tmp_path / "a.bin", 1000, b"a"))
    never_applied = blob_store.put(write_random(tmp_path / "b.bin", 1000, b"b"))
    blob_store.get(applied)
    blob_store.get(never_applied)
    blob_store.sweep_local(keep={applied})
    assert _local_copy(blob_store, applied).exists()
    if not isinstance(blob_store, FileBlobStore):  # file://: the local copy IS the blob
        assert not _local_copy(blob_store, never_applied).exists()
    assert _stored_bytes(blob_store, applied) is not None
    assert _stored_bytes(blob_store, never_applied) is not None
