"""S3BlobStore specifics on a real SeaweedFS: key layout, cache, multipart, error translation."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from container_apps.errors import BlobNotFound, StoreError, StoreUnavailable
from container_apps.retry_policy import RetryPolicy
from container_apps.stores.factory import open_store
from container_apps.stores.s3 import S3BlobStore
from container_apps.tests.support.fixtures_servers import S3Server
from container_apps.tests.support.random_data import MiB, write_random
from container_apps.tests.support.servers import free_port

pytestmark = pytest.mark.s3
FAST = RetryPolicy(attempts=3, sleep=lambda _s: None)


def _bucket(url: str) -> str:
    return urlsplit(url).netloc


def test_object_key_is_prefix_slash_cid(
    s3_store_url: str, s3_server: S3Server, tmp_path: Path
) -> None:
    store = S3BlobStore.from_url(s3_store_url, cache_dir=tmp_path / "cache")
    cid = store.put(write_random(tmp_path / "a.bin", 1000, b"a"))
    listed = s3_server.client().list_objects_v2(Bucket=_bucket(s3_store_url))
    assert [o["Key"] for o in listed["Contents"]] == [f"car/{cid}"]


def test_object_key_without_prefix_is_the_cid(
    s3_store_url: str, s3_server: S3Server, tmp_path: Path
) -> None:
    bucket = _bucket(s3_store_url)
    store = S3BlobStore.from_url(s3_server.store_url(bucket), cache_dir=tmp_path / "cache")
    cid = store.put(write_random(tmp_path / "a.bin", 1000, b"a"))
    listed = s3_server.client().list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in listed["Contents"]] == [cid]
    assert store.get(cid).read_bytes() == (tmp_path / "a.bin").read_bytes()


def test_large_put_is_multipart(s3_store_url: str, s3_server: S3Server, tmp_path: Path) -> None:
    store = S3BlobStore.from_url(s3_store_url, cache_dir=tmp_path / "cache")
    cid = store.put(write_random(tmp_path / "big.bin", 17 * MiB, b"mp"))
    head = s3_server.client().head_object(Bucket=_bucket(s3_store_url), Key=f"car/{cid}")
    assert head["ETag"].strip('"').endswith("-3")  # three 8 MiB parts


def test_delete_local_removes_only_the_cached_copy(s3_store_url: str, tmp_path: Path) -> None:
    store = S3BlobStore.from_url(s3_store_url, cache_dir=tmp_path / "cache")
    cid = store.put(write_random(tmp_path / "a.bin", 1000, b"a"))
    cached = store.get(cid)
    assert cached == tmp_path / "cache" / cid
    store.delete(cid, remote=False, local=True)
    assert not cached.exists()
    assert store.get(cid).exists()  # still remote
    store.delete(cid, remote=True, local=False)
    with pytest.raises(BlobNotFound):
        store.get(cid)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [cid]  # no temp files left


def test_credentials_in_url_work_and_are_redacted(
    s3_store_url: str, s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    url = s3_store_url.replace("s3://", f"s3://{s3_server.access_key}:{s3_server.secret_key}@")
    store = S3BlobStore.from_url(url, cache_dir=tmp_path / "cache")
    cid = store.put(write_random(tmp_path / "a.bin", 1000, b"a"))
    assert store.get(cid).exists()
    assert s3_server.secret_key not in store.describe()
    assert f"{s3_server.access_key}:***@" in store.describe()


def test_wrong_credentials_give_one_line_error_naming_the_redacted_url(
    s3_store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    url = s3_store_url.replace("s3://", "s3://WRONGKEY:wrong-secret-value@")
    store = open_store(url, cache_dir=tmp_path / "cache", policy=FAST)
    src = write_random(tmp_path / "a.bin", 1000, b"a")
    for op in (
        lambda: store.put(src),
        lambda: store.get("bafkreiaaaa" + "a" * 49, sha256="0" * 64),
    ):
        with pytest.raises(StoreError) as info:
            op()
        message = str(info.value)
        assert not isinstance(info.value, StoreUnavailable)
        assert "wrong-secret-value" not in message
        assert "s3://WRONGKEY:***@" in message
        assert "AWS_ACCESS_KEY_ID" in message  # the fix
        assert "\n" not in message


def test_unreachable_endpoint_is_transient_and_retried_until_given_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    sleeps: list[float] = []
    policy = RetryPolicy(attempts=3, sleep=sleeps.append)
    url = f"s3://bucket1?endpoint_url=http://127.0.0.1:{free_port()}"
    store = open_store(url, cache_dir=tmp_path / "cache", policy=policy)
    with pytest.raises(StoreUnavailable) as info:
        store.put(write_random(tmp_path / "a.bin", 1000, b"a"))
    assert len(sleeps) == 2
    assert "cannot reach" in str(info.value)
    assert os.listdir(tmp_path / "cache") == []


def test_check_of_a_missing_bucket_says_so(s3_store_url: str, tmp_path: Path) -> None:
    bucket = urlsplit(s3_store_url).netloc
    url = s3_store_url.replace(f"s3://{bucket}", "s3://no-such-bucket-here", 1)
    with pytest.raises(StoreError) as info:
        S3BlobStore.from_url(url, cache_dir=tmp_path / "cache").check()
    assert not isinstance(info.value, StoreUnavailable)
    assert "bucket does not exist" in str(info.value)


def test_check_with_wrong_credentials_names_the_fix(
    s3_store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    url = s3_store_url.replace("s3://", "s3://WRONGKEY:wrong-secret-value@")
    with pytest.raises(StoreError) as info:
        S3BlobStore.from_url(url, cache_dir=tmp_path / "cache").check()
    assert not isinstance(info.value, StoreUnavailable)
    assert "wrong-secret-value" not in str(info.value)


def test_check_of_an_unreachable_endpoint_is_transient(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    url = f"s3://bucket1?endpoint_url=http://127.0.0.1:{free_port()}"
    with pytest.raises(StoreUnavailable) as info:
        S3BlobStore.from_url(url, cache_dir=tmp_path / "cache").check()
    assert "cannot reach" in str(info.value)
