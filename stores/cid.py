"""CIDv1 (raw codec, sha2-256, base32) for archive bytes: the id IS the digest (docs/FORMAT.md,
"Terminology").

Hand-written on purpose: it is four header bytes and a base32 call, and a library would
pull in multiformats tables we never use. ``bafkrei…`` ids therefore prove integrity:
``sha256_from_cid`` gives back the digest a downloaded copy must match.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from pathlib import Path
from typing import BinaryIO

from .base import Progress

_PREFIX = bytes([0x01, 0x55, 0x12, 0x20])  # CIDv1, raw codec, sha2-256, 32-byte digest
CHUNK = 1024 * 1024


def cid_from_sha256(digest: bytes) -> str:
    """The CIDv1 string for a raw blob whose SHA-256 is ``digest``."""
    if len(digest) != 32:
        raise ValueError("sha256 digest must be 32 bytes")
    return "b" + base64.b32encode(_PREFIX + digest).decode("ascii").lower().rstrip("=")


def sha256_from_cid(cid: str) -> str | None:
    """The hex SHA-256 inside a raw sha2-256 CIDv1, or None for any other kind of id."""
    if not cid.startswith("b") or len(cid) < 10:
        return None
    body = cid[1:].upper()
    body += "=" * (-len(body) % 8)
    try:
        raw = base64.b32decode(body)
    except (ValueError, binascii.Error):
        return None
    if len(raw) != 36 or raw[:4] != _PREFIX:
        return None
    return raw[4:].hex()


def is_cid(value: str) -> bool:
    """True for a raw sha2-256 CIDv1 (the only kind our stores mint)."""
    return sha256_from_cid(value) is not None


def hash_stream(handle: BinaryIO, total: int | None, progress: Progress | None) -> str:
    """Hex SHA-256 of everything left in ``handle``, in 1 MiB chunks, reporting (done, total)."""
    h = hashlib.sha256()
    done = 0
    while chunk := handle.read(CHUNK):
        h.update(chunk)
        done += len(chunk)
        if progress is not None:
            progress(done, total)
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, streamed (memory flat in file size)."""
    with open(path, "rb") as f:
        return hash_stream(f, None, None)


def cid_for_file(path: Path) -> str:
    """The CID of a file's bytes."""
    return cid_from_sha256(bytes.fromhex(sha256_file(path)))


# Ids a store accepts: our CIDs and foreign ids alike. One path component, never starting
# with "." (temp files do), so an id taken from an untrusted record cannot escape the store.
_BLOB_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._=-")


def is_safe_blob_id(blob_id: str) -> bool:
    """True if ``blob_id`` can be used as a file name / object key component as is."""
    return (
        0 < len(blob_id) <= 255
        and not blob_id.startswith((".", "-"))
        and all(c in _BLOB_ID_CHARS for c in blob_id)
    )
