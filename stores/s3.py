"""S3BlobStore (``s3://bucket/prefix?endpoint_url=…&region=…``): blobs in any S3-compatible service.

Layout (docs/BACKENDS.md, "Storage layouts"): object key ``<prefix>/<cid>`` (no prefix:
``<cid>``). The CID is computed by a streaming hash pass before the upload; the upload is
boto3's managed transfer from the file name, so large files go multipart in 8 MiB parts read
from disk part by part (memory stays flat in file size). ``get`` downloads into this node's
cache dir through a locked ``.get-*.tmp`` file (``stores/tempfiles.py``), verifies the
bytes, then renames; a mismatch deletes the download, never the object (a consumer never
deletes remote data).

This is the only module that imports boto3 and the only place its errors are
translated: 404 → ``BlobNotFound``; connection errors, timeouts, 5xx and throttling →
``StoreUnavailable`` (retried by ``stores/retrying.py``); bad credentials, access denied
and a missing bucket → ``StoreError`` with a one-line fix. Credentials come from the
standard AWS chain (env, config files) unless the URL carries ``KEY:SECRET@``; either
way ``describe()`` and every message show the redacted URL only.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import unquote, urlsplit

import boto3
import botocore.config
import botocore.exceptions
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig

from ..backend_urls import query_params, redact_url, split_url
from ..errors import BlobNotFound, ConfigError, StoreError, StoreUnavailable
from .base import Progress, StoreBackend
from .blobfiles import check_blob_id, check_size, expected_sha256, verify_digest
from .cid import cid_from_sha256, sha256_file
from .ranges import check_range, past_end
from .tempfiles import GET_PREFIX, LockedTemp, prune_local_copies, sweep_temp_files

URL_KEY = "STORAGE.BLOBS"
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_MiB = 1024 * 1024
# Bounded memory: 8 MiB parts, two in flight (README, "Benchmarks": flat RSS for 1 GiB).
TRANSFER = TransferConfig(
    multipart_threshold=8 * _MiB,
    multipart_chunksize=8 * _MiB,
    max_concurrency=2,
    use_threads=True,
)
_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})
_CREDENTIALS = frozenset(
    {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken"}
)
_THROTTLED = frozenset({"SlowDown", "Throttling", "RequestTimeout", "ServiceUnavailable"})
_RANGE_PAST_END = frozenset({"InvalidRange", "416", "RequestedRangeNotSatisfiable"})


@dataclass(frozen=True, slots=True)
class S3StoreConfig:
    """A bucket, an optional key prefix, and how to reach the service."""

    url: str  # redacted, for messages
    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    access_key: str | None = None
    secret_key: str | None = None

    @classmethod
    def from_url(cls, url: str) -> S3StoreConfig:
        """Parse ``s3://[KEY:SECRET@]bucket[/prefix][?endpoint_url=…&region=…]``.

        Raises:
            ConfigError: bad bucket name, prefix, endpoint or unknown parameter.
        """
        parts = split_url(url, key=URL_KEY, schemes=("s3",))
        params = query_params(parts, key=URL_KEY, allowed=("endpoint_url", "region"))
        shown = redact_url(url)
        userinfo, _, bucket = parts.netloc.rpartition("@")
        if not _BUCKET_RE.match(bucket):
            raise ConfigError(f"{URL_KEY}: {shown}: bucket {bucket!r} is not a valid S3 name")
        access_key, _, secret_key = userinfo.partition(":")
        if userinfo and not (access_key and secret_key):
            raise ConfigError(f"{URL_KEY}: {shown}: credentials must be KEY:SECRET@bucket")
        prefix = parts.path.strip("/")
        if prefix and any(seg in ("", ".", "..") for seg in prefix.split("/")):
            raise ConfigError(f"{URL_KEY}: {shown}: prefix {prefix!r} has empty or dot segments")
        endpoint = params.get("endpoint_url")
        if endpoint is not None:
            ep = urlsplit(endpoint)
            if ep.scheme not in ("http", "https") or not ep.hostname:
                raise ConfigError(
                    f"{URL_KEY}: {shown}: endpoint_url must be http(s)://host[:port], "
                    f"got {redact_url(endpoint)}"
                )
        return cls(
            url=shown,
            bucket=bucket,
            prefix=prefix,
            endpoint_url=endpoint,
            region=params.get("region"),
            access_key=unquote(access_key) or None,
            secret_key=unquote(secret_key) or None,
        )


class _Counter:
    """Adapts boto3's per-thread byte increments to our (done, total) progress callback."""

    def __init__(self, progress: Progress, total: int | None) -> None:
        self._progress, self._total, self._done = progress, total, 0
        self._lock = threading.Lock()

    def __call__(self, amount: int) -> None:
        with self._lock:
            self._done += amount
            self._progress(self._done, self._total)


class S3BlobStore:
    """Content-addressed blobs under one bucket/prefix of an S3-compatible service."""

    scheme: ClassVar[str] = "s3"

    def __init__(self, config: S3StoreConfig, *, cache_dir: Path) -> None:
        self.config = config
        self.cache_dir = cache_dir
        cache_dir.mkdir(parents=True, exist_ok=True)
        self._client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=config.endpoint_url,
            region_name=config.region or "us-east-1",
            aws_access_key_id=config.access_key,
            aws_secret_access_key=config.secret_key,
            config=botocore.config.Config(
                # Backends do not retry (RetryingStore does), so one attempt per request.
                retries={"total_max_attempts": 1},
                connect_timeout=5,
                read_timeout=60,
                s3={"addressing_style": "path"},
                # We verify sha256 ourselves; extra checksums break some S3-compatibles.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    @staticmethod
    def check_url(url: str) -> None:
        """Parse ``url`` without any I/O.

        Raises:
            ConfigError: the URL is malformed for this backend.
        """
        S3StoreConfig.from_url(url)

    @classmethod
    def from_url(cls, url: str, *, cache_dir: Path) -> S3BlobStore:
        """Open an ``s3://`` URL; downloads go to ``cache_dir``."""
        return cls(S3StoreConfig.from_url(url), cache_dir=cache_dir)

    def key_for(self, cid: str) -> str:
        """The object key of ``cid`` (docs/BACKENDS.md, "Storage layouts")."""
        return f"{self.config.prefix}/{cid}" if self.config.prefix else cid

    def put(self, src: Path, *, progress: Progress | None = None) -> str:
        """Upload ``src`` (multipart when large) and return its CID.

        Raises:
            StoreUnavailable: connection error, timeout, 5xx or throttling.
            StoreError: bad credentials, access denied, missing bucket, unreadable file.
        """
        try:
            total = os.stat(src).st_size
            cid = cid_from_sha256(bytes.fromhex(sha256_file(src)))
        except OSError as exc:
            raise StoreError(f"put of {src} into {self.describe()} failed: {exc}") from exc
        callback = _Counter(progress, total) if progress is not None else None
        try:
            self._client.upload_file(
                str(src), self.config.bucket, self.key_for(cid), Config=TRANSFER, Callback=callback
            )
        except S3UploadFailedError as exc:
            # boto3 wraps the ClientError in a string; the original is the context.
            raise self._translate(exc.__context__ or exc, "put", cid) from exc
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._translate(exc, "put", cid) from exc
        return cid

    def get(
        self,
        cid: str,
        *,
        sha256: str | None = None,
        max_bytes: int | None = None,
        progress: Progress | None = None,
    ) -> Path:
        """Download ``cid`` into the cache dir, verify it, and return the cached path.

        Raises:
            BlobNotFound: no such object.
            BlobCorrupt: the bytes do not match; the download was deleted, the object kept.
            BlobTooLarge: the object is bigger than ``max_bytes``; nothing was downloaded.
            StoreUnavailable: transient failure.
            StoreError: invalid id, credentials, missing bucket.
        """
        check_blob_id(cid)
        expected = expected_sha256(cid, sha256)
        key = self.key_for(cid)
        try:
            size = int(
                self._client.head_object(Bucket=self.config.bucket, Key=key)["ContentLength"]
            )
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._translate(exc, "get", cid) from exc
        check_size(cid, size, max_bytes)  # before a byte lands in the cache dir
        callback = _Counter(progress, size) if progress is not None else None
        try:
            with LockedTemp(self.cache_dir, GET_PREFIX) as tmp:
                self._download(key, cid, tmp.fd, callback)
                verify_digest(tmp.path, cid, expected, None)
                dest = self.cache_dir / cid
                tmp.place(dest)
        except OSError as exc:
            raise StoreError(f"get of {cid} into {self.cache_dir} failed: {exc}") from exc
        return dest

    def _download(self, key: str, cid: str, fd: int, callback: _Counter | None) -> None:
        # Into our own locked temp file (download_fileobj), not download_file: that one
        # writes a temp file of its own that a killed process would leave unmarked.
        try:
            with os.fdopen(fd, "wb", closefd=False) as out:
                self._client.download_fileobj(
                    self.config.bucket, key, out, Config=TRANSFER, Callback=callback
                )
                out.flush()
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._translate(exc, "get", cid) from exc

    def get_range(self, cid: str, offset: int, length: int) -> bytes:
        """``length`` bytes of the object from ``offset``: one ranged GET, nothing cached.

        Raises:
            BlobNotFound: no such object.
            StoreError: invalid id or range, a range past the end, credentials, bucket.
            StoreUnavailable: transient failure, including a body cut off mid-read.
        """
        check_range(cid, offset, length)
        try:
            reply = self._client.get_object(
                Bucket=self.config.bucket,
                Key=self.key_for(cid),
                Range=f"bytes={offset}-{offset + length - 1}",
            )
        except botocore.exceptions.ClientError as exc:
            if _error_code(exc) in _RANGE_PAST_END:
                raise past_end(cid, offset, length, None) from exc
            raise self._translate(exc, "get_range", cid) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self._translate(exc, "get_range", cid) from exc
        return self._read_range_body(reply, cid, offset, length)

    def _read_range_body(self, reply: Any, cid: str, offset: int, length: int) -> bytes:
        """The body of a ranged GET, exactly ``length`` bytes or an error."""
        try:
            data = bytes(reply["Body"].read(length + 1))
        except botocore.exceptions.BotoCoreError as exc:  # the connection broke mid-body
            raise StoreUnavailable(
                f"S3 get_range of {cid} at {self.describe()}: body cut off ({exc})"
            ) from exc
        finally:
            reply["Body"].close()
        if len(data) == length:
            return data
        total = _range_total(str(reply.get("ContentRange", "")))
        if total is not None and offset + length > total:
            raise past_end(cid, offset, length, total)
        raise StoreUnavailable(
            f"S3 get_range of {cid} at {self.describe()}: got {len(data)} of {length} bytes"
        )

    def delete(self, cid: str, *, remote: bool, local: bool) -> None:
        """Delete the object (``remote``) and/or the cached copy (``local``); missing = no-op.

        Raises:
            StoreUnavailable: transient failure.
            StoreError: invalid id, credentials, missing bucket.
        """
        check_blob_id(cid)
        if remote:
            try:
                self._client.delete_object(Bucket=self.config.bucket, Key=self.key_for(cid))
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                err = self._translate(exc, "delete", cid)
                if not isinstance(err, BlobNotFound):
                    raise err from exc
        if local:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.cache_dir / cid)

    def sweep_local(self, *, keep: Collection[str] = ()) -> list[str]:
        """Remove abandoned downloads and every cached copy but ``keep``; never an object.

        The cache dir is this node's own, so a copy not in ``keep`` is garbage: a CID
        downloaded but never applied, or one whose retirement was missed.
        """
        removed = sweep_temp_files(self.cache_dir, GET_PREFIX)
        return removed + prune_local_copies(self.cache_dir, keep)

    def describe(self) -> str:
        """The store URL with credentials redacted."""
        return self.config.url

    def check(self) -> None:
        """HEAD the bucket: the service answers, the credentials work, the bucket exists.

        Raises:
            StoreUnavailable: connection error, timeout, 5xx or throttling.
            StoreError: credentials, access denied, or no such bucket.
        """
        bucket = f"bucket {self.config.bucket}"
        try:
            self._client.head_bucket(Bucket=self.config.bucket)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            err = self._translate(exc, "check", bucket)
            if isinstance(err, BlobNotFound):  # HEAD has no body: a bare 404 is the bucket
                err = StoreError(
                    f"S3 check of {bucket} at {self.describe()}: bucket does not exist",
                    hint="create the bucket first",
                )
            raise err from exc

    def _translate(self, exc: BaseException, op: str, cid: str) -> StoreError:
        """Map a boto3/botocore error to our tree (docs/BACKENDS.md, "Errors and retries")."""
        where = f"S3 {op} of {cid} at {self.describe()}"
        if isinstance(exc, botocore.exceptions.ClientError):
            return _translate_client_error(exc, where, cid)
        if isinstance(
            exc,
            botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError,
        ):
            return StoreError(
                f"{where}: no AWS credentials",
                hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or put KEY:SECRET@ in the URL",
            )
        if isinstance(
            exc, botocore.exceptions.ConnectionError | botocore.exceptions.HTTPClientError
        ):
            return StoreUnavailable(
                f"{where}: cannot reach the service ({type(exc).__name__})",
                hint="check endpoint_url and that the S3 service is running",
            )
        return StoreError(f"{where} failed: {exc}")


def _error_code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _range_total(content_range: str) -> int | None:
    """The total size in a ``Content-Range: bytes a-b/total`` header, if it has one."""
    _, _, total = content_range.rpartition("/")
    return int(total) if total.isdigit() else None


def _translate_client_error(
    exc: botocore.exceptions.ClientError, where: str, cid: str
) -> StoreError:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if code in _NOT_FOUND:
        return BlobNotFound(cid)
    if code == "NoSuchBucket":
        return StoreError(f"{where}: bucket does not exist", hint="create the bucket first")
    if code in _CREDENTIALS:
        return StoreError(
            f"{where}: access denied ({code})",
            hint="check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and the bucket policy",
        )
    if status >= 500 or code in _THROTTLED:
        return StoreUnavailable(f"{where}: service error {code or status}, retry later")
    return StoreError(f"{where} failed: {code or status}")


if TYPE_CHECKING:  # mypy --strict checks this class against StoreBackend and BlobStore
    _backend: StoreBackend = S3BlobStore
