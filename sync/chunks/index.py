"""The snapshot index: every entry of a chunked snapshot and where its chunks live.

One index blob per snapshot; its CID is the snapshot's identity (the record's ``cid``
will point at it). The blob is one zstd frame of canonical JSON (sorted keys, no spaces,
UTF-8), so the same snapshot always has the same CID. Layout, with every field, in
docs/FORMAT.md ("Chunked snapshots"):

    {"format": "car-chunked-index", "version": 1, "chunk_hash": "sha256",
     "roots": ["app/data"], "packs": ["bafkrei…", …],
     "entries": [{"path": "app/data", "type": "dir", "mode": 493, "mtime_ns": …},
                 {"path": "app/data/f", "type": "file", "mode": 420, "mtime_ns": …,
                  "size": 5, "chunks": [[0, 8, 14, 5, "<sha256 hex>", true]]}]}

A chunk is ``[pack number, offset, length, raw_length, digest, compressed]``, the pack
number indexing ``packs`` (a CID written once instead of once per chunk). Paths follow
the tar archive's rule: container paths without the leading ``/``. Entries are
directories and regular files only, as in the tar formats; owners are not kept (the
consumer gives restored entries its volume root's owner).

This module builds and encodes; ``index_parse.py`` is the only way back in from bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import zstandard

from ...stores.cid import cid_from_sha256
from . import constants as K


@dataclass(frozen=True, slots=True)
class ChunkRef:
    """Where one chunk of a file is stored and how to check it."""

    pack: str  # CID of the pack blob
    offset: int  # of the payload in the pack
    length: int  # of the payload (compressed or raw)
    raw_length: int  # of the chunk itself
    digest: str  # chunk id of the raw bytes (ids.py)
    compressed: bool  # payload is a zstd frame


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """A directory or a regular file of the snapshot."""

    path: str  # container path without the leading "/"
    kind: str  # K.ENTRY_FILE or K.ENTRY_DIR ("type" in JSON)
    mode: int  # permission bits, as on the provider (the apply strips setuid etc.)
    mtime_ns: int
    size: int = 0
    chunks: tuple[ChunkRef, ...] = ()

    @property
    def is_file(self) -> bool:
        return self.kind == K.ENTRY_FILE


@dataclass(frozen=True, slots=True)
class SnapshotIndex:
    """A whole snapshot: its roots (the archive paths) and entries, in walk order."""

    roots: tuple[str, ...]
    entries: tuple[IndexEntry, ...]
    chunk_hash: str = K.CHUNK_HASH_SHA256

    def files(self) -> Iterator[IndexEntry]:
        """The regular-file entries, in index order."""
        return (e for e in self.entries if e.kind == K.ENTRY_FILE)

    def packs(self) -> list[str]:
        """Every pack CID the index references, in first-use order."""
        return list(dict.fromkeys(c.pack for e in self.files() for c in e.chunks))

    def unpacked_bytes(self) -> int:
        """Total size of the files' contents."""
        return sum(e.size for e in self.files())


def known_chunks(indexes: Iterable[SnapshotIndex]) -> dict[str, ChunkRef]:
    """Digest -> stored copy for every chunk the given (kept) indexes reference.

    A writer stores a chunk again only if its digest is missing here.
    """
    known: dict[str, ChunkRef] = {}
    for index in indexes:
        for entry in index.files():
            for ref in entry.chunks:
                known.setdefault(ref.digest, ref)
    return known


def index_document(index: SnapshotIndex) -> dict[str, Any]:
    """The JSON document of ``index`` (see the module docstring)."""
    packs = index.packs()
    number = {cid: n for n, cid in enumerate(packs)}
    return {
        "format": K.INDEX_FORMAT,
        "version": K.INDEX_VERSION,
        "chunk_hash": index.chunk_hash,
        "roots": list(index.roots),
        "packs": packs,
        "entries": [_entry_document(e, number) for e in index.entries],
    }


def _entry_document(entry: IndexEntry, number: dict[str, int]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "path": entry.path,
        "type": entry.kind,
        "mode": entry.mode,
        "mtime_ns": entry.mtime_ns,
    }
    if entry.kind == K.ENTRY_FILE:
        out["size"] = entry.size
        out["chunks"] = [
            [number[c.pack], c.offset, c.length, c.raw_length, c.digest, c.compressed]
            for c in entry.chunks
        ]
    return out


def encode_index(index: SnapshotIndex) -> bytes:
    """The index blob: one zstd frame (level 3, content size set) of canonical JSON."""
    text = json.dumps(
        index_document(index), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return zstandard.ZstdCompressor(level=K.ZSTD_LEVEL).compress(text.encode("utf-8"))


def blob_cid(data: bytes) -> str:
    """The CID a blob store gives ``data`` (stores/cid.py)."""
    return cid_from_sha256(hashlib.sha256(data).digest())
