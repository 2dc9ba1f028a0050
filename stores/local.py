"""FileBlobStore (``file:///DIR``): the embedded default blob store, one directory per host.

Layout (docs/BACKENDS.md, "Storage layouts", part of the contract): ``<dir>/<cid>``, one
file per blob named by its CID, so ``sha256sum`` checks a blob by hand. Every runner on the
host shares the directory: a put is a streamed copy into a locked ``.put-*.tmp`` file in the
same directory, fsync, then ``os.replace``, so readers never see a partial blob, concurrent
puts of the same content both land the same bytes, and a sweep at start removes only the
temp files of writers that died (``stores/tempfiles.py``). ``get`` returns the stored file
itself (no second copy), which is why ``delete(local=True)`` never removes it: other runners
share it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..backend_urls import absolute_path, query_params, split_url
from ..errors import BlobNotFound, StoreError
from ..fsutil import fsync_dir
from .base import Progress, StoreBackend
from .blobfiles import check_blob_id, check_size, copy_hashing, expected_sha256, verify_digest
from .cid import cid_from_sha256
from .ranges import check_range, past_end
from .tempfiles import PUT_PREFIX, LockedTemp, sweep_temp_files

URL_KEY = "STORAGE.BLOBS"
EXAMPLE_URL = "file:///var/lib/car/shared/blobs"


@dataclass(frozen=True, slots=True)
class FileStoreConfig:
    """Where the blobs live: an absolute directory."""

    directory: Path

    @classmethod
    def from_url(cls, url: str) -> FileStoreConfig:
        """Parse ``file:///abs/dir``.

        Raises:
            ConfigError: host part, relative path, or any query parameter.
        """
        parts = split_url(url, key=URL_KEY, schemes=("file",))
        query_params(parts, key=URL_KEY, allowed=())
        return cls(absolute_path(parts, key=URL_KEY, example=EXAMPLE_URL))


class FileBlobStore:
    """Content-addressed directory of blobs shared by the runners of one host."""

    scheme: ClassVar[str] = "file"

    def __init__(self, config: FileStoreConfig) -> None:
        self.directory = config.directory
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create blob directory {self.directory}: {exc.strerror}",
                hint="fix STORAGE.BLOBS or the directory's permissions",
            ) from exc

    @staticmethod
    def check_url(url: str) -> None:
        """Parse ``url`` without any I/O.

        Raises:
            ConfigError: the URL is malformed for this backend.
        """
        FileStoreConfig.from_url(url)

    @classmethod
    def from_url(cls, url: str, *, cache_dir: Path) -> FileBlobStore:
        """Open ``file:///DIR``; ``cache_dir`` is unused (get returns the stored file)."""
        del cache_dir
        return cls(FileStoreConfig.from_url(url))

    def put(self, src: Path, *, progress: Progress | None = None) -> str:
        """Copy ``src`` into the store atomically and return its CID.

        Raises:
            StoreError: the copy failed (disk full, permissions); nothing was stored.
        """
        try:
            with LockedTemp(self.directory, PUT_PREFIX) as tmp:
                digest = copy_hashing(src, tmp.fd, progress)
                os.fchmod(tmp.fd, 0o644)
                cid = cid_from_sha256(bytes.fromhex(digest))
                # Replacing an existing copy is harmless (same bytes) and heals a corrupt one.
                tmp.place(self.directory / cid)
            fsync_dir(self.directory)
        except OSError as exc:
            raise StoreError(f"put of {src} into {self.describe()} failed: {exc}") from exc
        return cid

    def get(
        self,
        cid: str,
        *,
        sha256: str | None = None,
        max_bytes: int | None = None,
        progress: Progress | None = None,
    ) -> Path:
        """Return the stored file for ``cid`` after verifying its bytes.

        The stored file is every runner's copy, so a mismatch deletes nothing: the
        snapshot is refused on this reader and the blob's provider heals it with a put.

        Raises:
            BlobNotFound: no such blob.
            BlobCorrupt: the bytes do not match; the stored file is kept.
            BlobTooLarge: bigger than ``max_bytes`` (the stored blob is kept).
            StoreError: invalid id, or a foreign id without ``sha256``.
        """
        check_blob_id(cid)
        expected = expected_sha256(cid, sha256)
        path = self.directory / cid
        try:
            check_size(cid, path.stat().st_size, max_bytes)
            verify_digest(path, cid, expected, progress)
        except FileNotFoundError as exc:
            raise BlobNotFound(cid) from exc
        except OSError as exc:
            raise StoreError(f"get of {cid} from {self.describe()} failed: {exc}") from exc
        return path

    def get_range(self, cid: str, offset: int, length: int) -> bytes:
        """``length`` bytes of the stored file from ``offset`` (seek + read, no copy).

        Raises:
            BlobNotFound: no such blob.
            StoreError: invalid id or range, a range past the end, or a read error.
        """
        check_range(cid, offset, length)
        try:
            fd = os.open(self.directory / cid, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError as exc:
            raise BlobNotFound(cid) from exc
        except OSError as exc:
            raise StoreError(f"get_range of {cid} from {self.describe()} failed: {exc}") from exc
        try:
            return _pread_exactly(fd, cid, offset, length)
        except OSError as exc:
            raise StoreError(f"get_range of {cid} from {self.describe()} failed: {exc}") from exc
        finally:
            os.close(fd)

    def delete(self, cid: str, *, remote: bool, local: bool) -> None:
        """Remove the blob when ``remote``; ``local`` is a no-op (the file is shared).

        Raises:
            StoreError: invalid id.
        """
        check_blob_id(cid)
        if remote:
            # Missing already: retirement raced with itself or the blob never landed.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.directory / cid)
        del local  # get() returned the shared store file itself; never delete it here

    def check(self) -> None:
        """The blob directory is (still) a directory.

        Raises:
            StoreError: it is missing, unreadable or not a directory.
        """
        if not self.directory.is_dir():
            raise StoreError(
                f"{self.describe()} is missing or not a readable directory",
                hint="fix STORAGE.BLOBS or the directory's permissions",
            )

    def sweep_local(self, *, keep: Collection[str] = ()) -> list[str]:
        """Remove ``.put-*.tmp`` files of killed writers; every blob stays (all are shared).

        A temp file whose writer is alive (another runner's put in flight) is kept.
        """
        del keep  # there are no private copies here: get returns the shared file
        return sweep_temp_files(self.directory, PUT_PREFIX)

    def describe(self) -> str:
        """``file://<dir>`` (there are no secrets in a path)."""
        return f"file://{self.directory}"


def _pread_exactly(fd: int, cid: str, offset: int, length: int) -> bytes:
    """Read ``length`` bytes at ``offset``; a short file is a past-the-end error."""
    size = os.fstat(fd).st_size
    if offset + length > size:
        raise past_end(cid, offset, length, size)
    parts: list[bytes] = []
    done = 0
    while done < length:
        part = os.pread(fd, length - done, offset + done)
        if not part:  # the file shrank after fstat (a concurrent heal of a bad copy)
            raise past_end(cid, offset, length, offset + done)
        parts.append(part)
        done += len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


if TYPE_CHECKING:  # mypy --strict checks this class against StoreBackend and BlobStore
    _backend: StoreBackend = FileBlobStore
