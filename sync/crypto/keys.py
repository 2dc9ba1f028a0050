"""SYNC.ENCRYPTION_KEY_FILE: the sync set's 32-byte key and the subkeys derived from it.

One master key is shared by every runner of a sync set (``head -c 32 /dev/urandom``).
It is never used directly: HKDF-SHA256 derives one subkey per purpose, so the key that
seals blobs is not the one that names chunks (a chunk id reveals nothing about the
sealing key, and neither helps against the other), and a short key id lets a reader
tell "wrong key" from "damaged bytes" before it tries to decrypt anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ...errors import ConfigError
from ...fsutil import OwnerOnlyFileError, read_owner_only

KEY_BYTES = 32
KEY_ID_BYTES = 8
_SALT = b"container_apps sync-set key v1"


@dataclass(frozen=True, slots=True)
class SyncKeys:
    """The subkeys of one sync-set key; ``repr`` shows only the public key id."""

    content: bytes = field(repr=False)  # seals archives, packs' chunks and indexes
    chunk_id: bytes = field(repr=False)  # HMAC key of chunk ids
    key_id: bytes  # written into every sealed blob; not secret


def derive_keys(master: bytes) -> SyncKeys:
    """The subkeys of ``master`` (exactly 32 bytes)."""
    if len(master) != KEY_BYTES:
        raise ValueError(f"a sync-set key is {KEY_BYTES} bytes, not {len(master)}")
    return SyncKeys(
        content=_hkdf(master, b"content", KEY_BYTES),
        chunk_id=_hkdf(master, b"chunk-id", KEY_BYTES),
        key_id=_hkdf(master, b"key-id", KEY_ID_BYTES),
    )


def _hkdf(master: bytes, purpose: bytes, length: int) -> bytes:
    kdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=_SALT, info=purpose)
    return kdf.derive(master)


def key_file_problem(path: str) -> str | None:
    """Why ``path`` cannot be the key file (None if it can); never reads past 33 bytes."""
    return _read_key_file(path)[1]


def _read_key_file(path: str) -> tuple[bytes, str | None]:
    """The key file's bytes and why they cannot be the key (None if they can)."""
    try:
        data = read_owner_only(path, KEY_BYTES, follow_symlinks=False)
    except OwnerOnlyFileError as exc:
        if exc.kind == "not_regular":
            return b"", "is not a regular file"
        if exc.kind == "shared":
            return b"", (
                f"has mode {exc.detail}; it must not be readable by group "
                f"or others (chmod 600 {path})"
            )
        return b"", f"cannot be read ({exc.detail})"
    if len(data) != KEY_BYTES:
        return data, (
            f"holds {len(data)} bytes, not {KEY_BYTES} (make one with: head -c 32 /dev/urandom)"
        )
    return data, None


def load_keys(path: str | Path) -> SyncKeys:
    """Read and check the key file; derive its subkeys.

    Raises:
        ConfigError: the file is missing, not 0600-like, or not exactly 32 bytes.
    """
    data, problem = _read_key_file(str(path))
    if problem is not None:
        raise ConfigError(f"SYNC.ENCRYPTION_KEY_FILE: {path} {problem}")
    return derive_keys(data)
