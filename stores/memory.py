"""MemoryBlobStore: a real, in-process BlobStore for fast orchestration tests.

It passes the same contract suite as the real backends, which keeps it honest: same id
checks, same verification on ``get`` (a mismatch deletes the local copy, never the
stored bytes, and raises ``BlobCorrupt``), same no-op delete of unknown ids. Blobs live
in a dict; ``get`` materialises a verified copy under ``cache_dir``. Several runners in
one test may share one instance (one lock guards the dict).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..errors import BlobNotFound, StoreError
from .base import BlobStore, Progress
from .blobfiles import check_blob_id, check_size, expected_sha256, verify_digest
from .cid import cid_from_sha256
from .ranges import check_range, past_end
from .tempfiles import GET_PREFIX, LockedTemp, prune_local_copies, sweep_temp_files


class MemoryBlobStore:
    """Blobs in a dict; local copies in ``cache_dir``."""

    scheme: ClassVar[str] = "memory"

    def __init__(self, cache_dir: Path) -> None:
        self._blobs: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self.cache_dir = cache_dir
        cache_dir.mkdir(parents=True, exist_ok=True)

    def put(self, src: Path, *, progress: Progress | None = None) -> str:
        """Keep the bytes of ``src`` and return their CID.

        Raises:
            StoreError: ``src`` cannot be read.
        """
        try:
            data = src.read_bytes()
        except OSError as exc:
            raise StoreError(f"put of {src} into memory:// failed: {exc}") from exc
        cid = cid_from_sha256(hashlib.sha256(data).digest())
        with self._lock:
            self._blobs[cid] = data
        if progress is not None:
            progress(len(data), len(data))
        return cid

    def get(
        self,
        cid: str,
        *,
        sha256: str | None = None,
        max_bytes: int | None = None,
        progress: Progress | None = None,
    ) -> Path:
        """Write a verified copy of ``cid`` to ``cache_dir/<cid>`` and return it.

        Raises:
            BlobNotFound: no such blob.
            BlobCorrupt: the bytes do not match; the local copy was deleted, the stored
                bytes are kept.
            BlobTooLarge: bigger than ``max_bytes``; nothing was written.
            StoreError: invalid id, or a foreign id without ``sha256``.
        """
        check_blob_id(cid)
        expected = expected_sha256(cid, sha256)
        with self._lock:
            data = self._blobs.get(cid)
        if data is None:
            raise BlobNotFound(cid)
        check_size(cid, len(data), max_bytes)
        dest = self.cache_dir / cid
        # Through a locked temp file like the real stores, so the sweep contract holds here.
        with LockedTemp(self.cache_dir, GET_PREFIX) as tmp:
            with os.fdopen(tmp.fd, "wb", closefd=False) as out:
                out.write(data)
            verify_digest(tmp.path, cid, expected, progress)  # mismatch: the temp goes
            tmp.place(dest)
        return dest

    def get_range(self, cid: str, offset: int, length: int) -> bytes:
        """``length`` bytes of ``cid`` from ``offset`` (see ``BlobStore.get_range``).

        Raises:
            BlobNotFound: no such blob.
            StoreError: invalid id or range, or a range past the end.
        """
        check_range(cid, offset, length)
        with self._lock:
            data = self._blobs.get(cid)
        if data is None:
            raise BlobNotFound(cid)
        if offset + length > len(data):
            raise past_end(cid, offset, length, len(data))
        return data[offset : offset + length]

    def delete(self, cid: str, *, remote: bool, local: bool) -> None:
        """Forget the blob (``remote``) and/or remove the local copy (``local``)."""
        check_blob_id(cid)
        if remote:
            with self._lock:
                self._blobs.pop(cid, None)
        if local:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.cache_dir / cid)

    def check(self) -> None:
        """Always usable: the blobs live in this process."""

    def sweep_local(self, *, keep: Collection[str] = ()) -> list[str]:
        """Remove abandoned downloads and every cached copy but ``keep``; never a blob."""
        removed = sweep_temp_files(self.cache_dir, GET_PREFIX)
        return removed + prune_local_copies(self.cache_dir, keep)

    def describe(self) -> str:
        """``memory://`` (nothing secret, nothing to locate)."""
        return "memory://"

    # Test helpers (not part of the Protocol).
    def corrupt(self, cid: str, data: bytes) -> None:
        """Replace a blob's bytes, to simulate storage corruption in tests."""
        with self._lock:
            self._blobs[cid] = data

    def add(self, blob_id: str, data: bytes) -> None:
        """Store ``data`` under any id (a foreign, non-CID id), as another tool would."""
        check_blob_id(blob_id)
        with self._lock:
            self._blobs[blob_id] = data

    def stored(self, blob_id: str) -> bytes | None:
        """The bytes held under ``blob_id`` (None: nothing), without verifying them."""
        with self._lock:
            return self._blobs.get(blob_id)

    def cids(self) -> set[str]:
        """Ids currently stored remotely."""
        with self._lock:
            return set(self._blobs)


if TYPE_CHECKING:  # mypy --strict checks this class against the BlobStore Protocol
    _backend: type[BlobStore] = MemoryBlobStore
