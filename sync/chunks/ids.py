"""Chunk identity: the one place that turns a chunk's raw bytes into its id.

Without a key the id is the SHA-256 of the raw bytes, so anyone can check a chunk with
``sha256sum``. With ``SYNC.ENCRYPTION_KEY_FILE`` it is an HMAC-SHA256 under the sync
set's chunk-id subkey (as restic derives its ids under the repository key), so the
store, which sees the ids in no plaintext form anyway, could not confirm a guess about
a chunk's content even from one. The index records which in ``chunk_hash``; a keyed
index is always a sealed one (docs/FORMAT.md, "Encryption at rest").
"""

from __future__ import annotations

import hashlib
import hmac
from typing import ClassVar, Protocol

from . import constants as K

ChunkData = bytes | bytearray | memoryview


class ChunkIds(Protocol):
    """Computes chunk ids; ``name`` is what the index's ``chunk_hash`` field says."""

    name: ClassVar[str]

    def __call__(self, data: ChunkData) -> str:
        """The lowercase hex id of ``data`` (64 characters)."""
        ...


class Sha256ChunkIds:
    """Plain SHA-256 of the raw chunk (hashlib releases the GIL, so threads overlap)."""

    name: ClassVar[str] = K.CHUNK_HASH_SHA256

    def __call__(self, data: ChunkData) -> str:
        return hashlib.sha256(data).hexdigest()


class HmacChunkIds:
    """HMAC-SHA256 of the raw chunk under a sync set's chunk-id key."""

    name: ClassVar[str] = K.CHUNK_HASH_HMAC_SHA256

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __call__(self, data: ChunkData) -> str:
        return hmac.new(self._key, data, hashlib.sha256).hexdigest()


SHA256_IDS = Sha256ChunkIds()
KNOWN_CHUNK_HASHES: dict[str, ChunkIds] = {SHA256_IDS.name: SHA256_IDS}
CHUNK_HASH_NAMES = frozenset({K.CHUNK_HASH_SHA256, K.CHUNK_HASH_HMAC_SHA256})


def chunk_ids_for(name: str, id_key: bytes | None) -> ChunkIds | None:
    """The ids an index's ``chunk_hash`` names; None if unknown or its key is missing."""
    if name == K.CHUNK_HASH_HMAC_SHA256:
        return HmacChunkIds(id_key) if id_key is not None else None
    return KNOWN_CHUNK_HASHES.get(name)
