"""Signing key files: ``car keys generate`` writes them, a provider loads them.

The private key is a PKCS#8 PEM file that only its owner may read: it is created with
``O_EXCL`` and mode 0600 (never readable by others, not even for a moment), and a
provider refuses one that the group or others can read, as ssh does. The public key
goes beside it in ``PATH.pub``, one line (``car-ed25519:<base64>``) to paste into the
consumers' ``SYNC.TRUSTED_KEYS`` (README, "Signed records").
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from ..errors import ConfigError
from ..fsutil import OwnerOnlyFileError, atomic_write_bytes, read_owner_only
from .signing import public_key_text

_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_KEY_FILE_BYTES = 64 * 1024  # a PEM key is ~120 bytes; anything far larger is not one


class KeyFileError(ConfigError):
    """A key file that cannot be written or used; the message names the file."""


def public_path(private_path: Path) -> Path:
    """Where the public key of ``private_path`` goes: ``PATH.pub``."""
    return private_path.with_name(private_path.name + ".pub")


def generate_key_files(out: Path, *, force: bool = False) -> str:
    """Make a new Ed25519 key pair at ``out`` (0600) and ``out.pub``; returns the public line.

    Raises:
        KeyFileError: a file exists (and not ``force``), or a write failed.
    """
    pub = public_path(out)
    if not force:
        for path in (out, pub):
            if os.path.lexists(path):
                raise KeyFileError(f"{path}: already exists; use --force to replace it")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    line = public_key_text(key.public_key())
    try:
        _write(out, pem, mode=0o600, replace=force)
        _write(pub, (line + "\n").encode("ascii"), mode=0o644, replace=force)
    except FileExistsError as exc:  # appeared since the check above
        raise KeyFileError(f"{exc.filename}: already exists; use --force to replace it") from None
    except OSError as exc:
        raise KeyFileError(f"{exc.filename or out}: cannot write: {exc.strerror}") from None
    return line


def _write(path: Path, data: bytes, *, mode: int, replace: bool) -> None:
    """Create ``path`` with ``mode`` from the first byte; replace it atomically if asked."""
    if replace:
        atomic_write_bytes(path, data, mode=mode)  # its temp file is created 0600
        return
    fd = os.open(path, _NEW_FILE_FLAGS, mode)
    try:
        os.fchmod(fd, mode)  # the umask may only have narrowed it; make it exact
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """The private key in ``path``, refused unless only its owner can read it.

    Raises:
        KeyFileError: unreadable, not a regular file, readable by group or others, or not
            an unencrypted Ed25519 private key.
    """
    try:
        data = read_owner_only(path, MAX_KEY_FILE_BYTES, follow_symlinks=True)
    except OwnerOnlyFileError as exc:
        if exc.kind == "not_regular":
            raise KeyFileError(f"{path}: not a regular file") from None
        if exc.kind == "shared":
            raise KeyFileError(
                f"{path}: readable by group or others (mode {exc.detail}); run chmod 600 {path}"
            ) from None
        raise KeyFileError(f"{path}: cannot read: {exc.detail}") from None
    return _private_key(path, data)


def _private_key(path: Path, data: bytes) -> Ed25519PrivateKey:
    hint = "make one with `car keys generate --out PATH`"
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"{path}: too large for a key file; {hint}")
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise KeyFileError(f"{path}: not an unencrypted PEM private key; {hint}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: a {type(key).__name__}, not an Ed25519 private key; {hint}")
    return key
