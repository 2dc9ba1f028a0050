"""S3BlobStore error translation for answers SeaweedFS does not give on demand.

SeaweedFS creates a missing bucket on PUT and never throttles, so NoSuchBucket, 5xx and
SlowDown replies are injected with pytest-mock at the boto3 client; the translation
under test is the real one in stores/s3.py. Real-server cases are in test_s3_store.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from boto3.exceptions import S3UploadFailedError
from container_apps.errors import BlobNotFound, StoreError, StoreUnavailable
from container_apps.stores.s3 import S3BlobStore
from pytest_mock import MockerFixture

URL = "s3://bucket1/car?endpoint_url=http://127.0.0.1:9&region=eu-west-1"


def client_error(code: str, status: int, op: str = "PutObject") -> botocore.exceptions.ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": code},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return botocore.exceptions.ClientError(response, op)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> S3BlobStore:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    return S3BlobStore.from_url(URL, cache_dir=tmp_path / "cache")


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "a.bin"
    path.write_bytes(b"x" * 100)
    return path


def _upload_failing_with(exc: BaseException) -> S3UploadFailedError:
    """What boto3's upload_file raises: a string wrapper whose context is the ClientError."""
    try:
        raise exc
    except BaseException:
        try:
            raise S3UploadFailedError("Failed to upload") from None
        except S3UploadFailedError as wrapped:
            wrapped.__context__ = exc
            return wrapped


@pytest.mark.parametrize(
    ("code", "status", "expected", "text"),
    [
        ("NoSuchBucket", 404, StoreError, "bucket does not exist"),
        ("AccessDenied", 403, StoreError, "access denied"),
        ("SignatureDoesNotMatch", 403, StoreError, "access denied"),
        ("InternalError", 500, StoreUnavailable, "retry later"),
        ("ServiceUnavailable", 503, StoreUnavailable, "retry later"),
        ("SlowDown", 503, StoreUnavailable, "retry later"),
    ],
)
def test_put_error_codes_are_classified(
    store: S3BlobStore,
    src: Path,
    mocker: MockerFixture,
    code: str,
    status: int,
    expected: type,
    text: str,
) -> None:
    mocker.patch.object(
        store._client, "upload_file", side_effect=_upload_failing_with(client_error(code, status))
    )
    with pytest.raises(StoreError) as info:
        store.put(src)
    assert type(info.value) is expected
    assert text in str(info.value)
    assert isinstance(info.value.__cause__, S3UploadFailedError)


@pytest.mark.parametrize("code", ["404", "NoSuchKey"])
def test_head_not_found_is_blob_not_found(
    store: S3BlobStore, mocker: MockerFixture, code: str
) -> None:
    mocker.patch.object(
        store._client, "head_object", side_effect=client_error(code, 404, "HeadObject")
    )
    cid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    with pytest.raises(BlobNotFound):
        store.get(cid)


def test_delete_treats_not_found_as_done(store: S3BlobStore, mocker: MockerFixture) -> None:
    mocker.patch.object(
        store._client, "delete_object", side_effect=client_error("NoSuchKey", 404, "DeleteObject")
    )
    store.delete(
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", remote=True, local=True
    )


def test_read_timeout_during_download_is_transient_and_leaves_no_temp_file(
    store: S3BlobStore, mocker: MockerFixture, tmp_path: Path
) -> None:
    mocker.patch.object(store._client, "head_object", return_value={"ContentLength": 10})
    mocker.patch.object(
        store._client,
        "download_file",
        side_effect=botocore.exceptions.ReadTimeoutError(endpoint_url="http://127.0.0.1:9"),
    )
    with pytest.raises(StoreUnavailable):
        store.get("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
    assert list((tmp_path / "cache").iterdir()) == []


def test_missing_credentials_name_the_fix(
    tmp_path: Path, src: Path, monkeypatch: pytest.MonkeyPatch, mocker: MockerFixture
) -> None:
    store = S3BlobStore.from_url(URL, cache_dir=tmp_path / "cache")
    mocker.patch.object(
        store._client, "upload_file", side_effect=botocore.exceptions.NoCredentialsError()
    )
    with pytest.raises(StoreError) as info:
        store.put(src)
    assert "AWS_ACCESS_KEY_ID" in str(info.value)


def test_config_parses_bucket_prefix_endpoint_and_region(store: S3BlobStore) -> None:
    cfg = store.config
    assert (cfg.bucket, cfg.prefix, cfg.endpoint_url, cfg.region) == (
        "bucket1",
        "car",
        "http://127.0.0.1:9",
        "eu-west-1",
    )
    assert store.key_for("bafkreix") == "car/bafkreix"
    assert store.describe() == URL


class _Body:
    """A ranged GET body that returns ``data`` or breaks mid-read like a dropped socket."""

    def __init__(self, data: bytes = b"", error: BaseException | None = None) -> None:
        self.data, self.error, self.closed = data, error, False

    def read(self, _size: int = -1) -> bytes:
        if self.error is not None:
            raise self.error
        return self.data

    def close(self) -> None:
        self.closed = True


CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def test_get_range_body_cut_off_mid_read_is_transient(
    store: S3BlobStore, mocker: MockerFixture
) -> None:
    body = _Body(error=botocore.exceptions.ReadTimeoutError(endpoint_url="http://127.0.0.1:9"))
    mocker.patch.object(store._client, "get_object", return_value={"Body": body})
    with pytest.raises(StoreUnavailable) as info:
        store.get_range(CID, 0, 10)
    assert "cut off" in str(info.value)
    assert body.closed


def test_get_range_short_body_within_the_object_is_transient(
    store: S3BlobStore, mocker: MockerFixture
) -> None:
    reply = {"Body": _Body(b"abc"), "ContentRange": "bytes 0-9/100"}
    mocker.patch.object(store._client, "get_object", return_value=reply)
    with pytest.raises(StoreUnavailable) as info:
        store.get_range(CID, 0, 10)
    assert "got 3 of 10 bytes" in str(info.value)


@pytest.mark.parametrize(("code", "status"), [("InternalError", 500), ("SlowDown", 503)])
def test_get_range_server_errors_are_transient(
    store: S3BlobStore, mocker: MockerFixture, code: str, status: int
) -> None:
    mocker.patch.object(
        store._client, "get_object", side_effect=client_error(code, status, "GetObject")
    )
    with pytest.raises(StoreUnavailable):
        store.get_range(CID, 0, 10)


def test_get_range_not_found_is_blob_not_found(store: S3BlobStore, mocker: MockerFixture) -> None:
    mocker.patch.object(
        store._client, "get_object", side_effect=client_error("NoSuchKey", 404, "GetObject")
    )
    with pytest.raises(BlobNotFound):
        store.get_range(CID, 0, 10)
