"""MemoryBlobStore: a real, in-process BlobStore for fast orchestration tests.

It passes the same contract suite as the real backends, which keeps it honest. Blobs
live in a dict; ``get`` materialises a verified copy under ``cache_dir``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from pathlib import Path
from typing import ClassVar

from ..errors import BlobCorrupt, BlobNotFound
from ..fsutil import atomic_write_bytes
from .base import Progress
from .cid import cid_from_sha256, sha256_file, sha256_from_cid


class MemoryBlobStore:
    """Blobs in a dict; local copies in ``cache_dir``."""

    scheme: ClassVar[str] = "memory"

    def __init__(self, cache_dir: Path) -> None:
        self._blobs: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self.cache_dir = cache_dir
        cache_dir.mkdir(parents=True, exist_ok=True)

    def put(self, src: Path, *, progress: Progress | None = None) -> str:
        data = src.read_bytes()
        cid = cid_from_sha256(hashlib.sha256(data).digest())
        with self._lock:
            self._blobs[cid] = data
        if progress is not None:
            progress(len(data), len(data))
        return cid

    def get(self, cid: str, *, sha256: str | None = None, progress: Progress | None = None) -> Path:
        with self._lock:
            data = self._blobs.get(cid)
        if data is None:
            raise BlobNotFound(cid)
        dest = self.cache_dir / cid
        atomic_write_bytes(dest, data)
        expected = sha256_from_cid(cid) or sha256
        if expected is not None and sha256_file(dest) != expected:
            os.unlink(dest)
            raise BlobCorrupt(cid, f"blob {cid} does not match its digest")
        if progress is not None:
            progress(len(data), len(data))
        return dest

    def delete(self, cid: str, *, remote: bool, local: bool) -> None:
        if remote:
            with self._lock:
                self._blobs.pop(cid, None)
        if local:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.cache_dir / cid)

    def describe(self) -> str:
        return "memory://"

    # Test helpers (not part of the Protocol).
    def corrupt(self, cid: str, data: bytes) -> None:
        """Replace a blob's bytes, to simulate storage corruption in tests."""
        with self._lock:
            self._blobs[cid] = data

    def cids(self) -> set[str]:
        """Ids currently stored remotely."""
        with self._lock:
            return set(self._blobs)
