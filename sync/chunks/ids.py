"""Chunk identity: the one place that turns a chunk's raw bytes into its id.

Today the id is the SHA-256 of the raw bytes, so anyone can check a chunk with
``sha256sum``. Encryption (a later step) will need a keyed id instead (an HMAC with the
sync set's key, so a store cannot confirm guesses about plaintext); it slots in as
another ``ChunkIds`` whose ``name`` the index records in ``chunk_hash``, and every
writer and reader already gets its ids from here.
"""

from __future__ import annotations

import hashlib
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


SHA256_IDS = Sha256ChunkIds()
KNOWN_CHUNK_HASHES: dict[str, ChunkIds] = {SHA256_IDS.name: SHA256_IDS}
