"""Blob file helpers every store shares: id checks, streaming copy-and-hash, verification.

Written once so that each backend gets the same guarantees (stores/base.py): ids from
untrusted records cannot escape the store, files are copied and hashed in 1 MiB chunks
(memory stays flat in file size), temp files live in the destination directory, are
locked while written (``tempfiles.py``) and removed on any failure, and a digest
mismatch raises ``BlobCorrupt`` without deleting the stored blob (a reader never deletes
shared or remote data).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..errors import BlobCorrupt, BlobTooLarge, StoreError
from .base import Progress
from .cid import CHUNK, hash_stream, is_safe_blob_id, sha256_from_cid


def check_blob_id(blob_id: str) -> None:
    """Refuse ids that are not a single safe name (they come from untrusted records).

    Raises:
        StoreError: the id contains a path separator, starts with '.', or is empty/too long.
    """
    if not isinstance(blob_id, str) or not is_safe_blob_id(blob_id):
        raise StoreError(
            f"invalid blob id {blob_id!r}",
            hint="ids are CIDs (bafkrei...) or names of [A-Za-z0-9._=-] not starting with '.'",
        )


def check_size(blob_id: str, size: int, max_bytes: int | None) -> None:
    """Refuse a blob bigger than the caller allows, before any byte of it moves.

    Raises:
        BlobTooLarge: ``size`` is over ``max_bytes``.
    """
    if max_bytes is not None and size > max_bytes:
        raise BlobTooLarge(blob_id, size, max_bytes)


def expected_sha256(blob_id: str, sha256: str | None) -> str:
    """The hex digest a copy of ``blob_id`` must have: from the CID, else the caller's.

    Raises:
        StoreError: a foreign id with no ``sha256``; the bytes could not be verified.
    """
    digest = sha256_from_cid(blob_id) or sha256
    if digest is None:
        raise StoreError(
            f"cannot verify blob {blob_id}: not a sha2-256 CID and no sha256 given",
            hint="records for foreign ids must carry manifest.archive_sha256",
        )
    return digest.lower()


def copy_hashing(src: Path, fd: int, progress: Progress | None = None) -> str:
    """Copy ``src`` into the open file ``fd`` and fsync it; return the sha256 hex.

    ``fd`` stays open (it holds the temp file's lock, ``stores/tempfiles.py``); the
    caller renames the file into place or lets ``LockedTemp`` remove it.
    """
    total = os.stat(src).st_size
    h = hashlib.sha256()
    done = 0
    with open(src, "rb") as reader, os.fdopen(fd, "wb", closefd=False) as writer:
        while chunk := reader.read(CHUNK):
            h.update(chunk)
            writer.write(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
        writer.flush()
        os.fsync(writer.fileno())
    return h.hexdigest()


def verify_digest(path: Path, blob_id: str, expected: str, progress: Progress | None) -> None:
    """Hash ``path`` and raise if it does not match ``expected``; deletes nothing.

    A reader must never delete the stored blob: in the shared ``file://`` store that file
    is every runner's copy, and one bad read (or an untrusted record naming another sync
    set's blob with a wrong digest) would remove a good blob for all of them. Callers that
    downloaded a private copy remove that copy themselves; the blob's provider heals a
    really corrupt blob by putting it again.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        BlobCorrupt: the digest differs.
    """
    with open(path, "rb") as handle:
        actual = hash_stream(handle, os.fstat(handle.fileno()).st_size, progress)
    if actual != expected:
        raise BlobCorrupt(
            blob_id,
            f"blob {blob_id} is corrupt: sha256 {actual} != expected {expected}",
            hint="the stored blob is kept: its provider heals it by putting the archive "
            "again, or publishes a new snapshot",
        )
