"""Signing keys for tests: fixed Ed25519 keys (deterministic) and a key file on disk."""

from __future__ import annotations

from pathlib import Path

from container_apps.sync.key_files import generate_key_files
from container_apps.sync.signing import RecordSigner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def fixed_signer(seed: int) -> RecordSigner:
    """A signer whose key is derived from ``seed`` (same seed, same key)."""
    return RecordSigner(Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32))


def key_file(directory: Path, name: str = "sync.key") -> tuple[Path, str]:
    """A key pair made by ``car keys generate``'s code: (private key path, public line)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    return path, generate_key_files(path)
