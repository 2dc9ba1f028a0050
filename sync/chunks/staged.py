"""A captured snapshot waiting in staging, and what a capture starts from.

Capture and upload are separate steps so that the provider reads files while its app
is stopped and uploads after the restart (README, "Provider"): ``ChunkedSnapshotWriter.write``
leaves a ``StagedSnapshot`` (new packs and the index blob, each a file named by its CID)
in a local staging directory, and ``upload_staged`` puts them into the store, packs
first and the index last, so a store never holds an index whose packs are missing.

``PreviousSnapshot`` is what a capture compares against. ``previous_from_blob`` and
``fetch_previous`` turn "the last published index" into one, or into None when it is
missing, unreadable or of another format: the capture is then a full one, never a wrong
one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ...errors import StoreError, StoreUnavailable
from ...stores.base import BlobStore
from ..crypto.framing import Sealer
from .facts import SourceFacts
from .index import SnapshotIndex, blob_cid
from .index_parse import IndexInvalid, IndexLimits, parse_index

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PreviousSnapshot:
    """The last published index, with the provider's facts about it (if they match)."""

    index_cid: str
    index: SnapshotIndex
    facts: SourceFacts | None = None

    def usable_facts(self) -> SourceFacts | None:
        """The facts, if they describe this very index."""
        if self.facts is not None and self.facts.index_cid == self.index_cid:
            return self.facts
        return None


@dataclass(frozen=True, slots=True)
class WriteStats:
    """What a capture read and what it added."""

    files: int = 0
    dirs: int = 0
    files_read: int = 0  # re-read: new or changed since the previous index
    files_reused: int = 0  # unchanged by size/mtime/ctime/inode: chunk list reused
    bytes_read: int = 0
    chunks_new: int = 0
    chunks_known: int = 0  # found in a kept index or earlier in this snapshot
    bytes_new: int = 0  # raw bytes of the new chunks
    stored_bytes_new: int = 0  # bytes of the new packs (compressed payloads + headers)
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class StagedSnapshot:
    """A capture's output in staging: the index blob and the packs only it has."""

    index: SnapshotIndex
    index_cid: str
    index_path: Path
    pack_paths: tuple[Path, ...]
    facts: SourceFacts
    stats: WriteStats

    @property
    def pack_cids(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.pack_paths)


def upload_staged(staged: StagedSnapshot, store: BlobStore) -> None:
    """Put the new packs, then the index, into ``store``.

    Raises:
        StoreError: a put failed, or a staged file no longer has the bytes of its name.
        StoreUnavailable: transient failure (the caller retries; puts are idempotent).
    """
    for path in (*staged.pack_paths, staged.index_path):
        cid = store.put(path)
        if cid != path.name:
            raise StoreError(
                f"staged blob {path.name} was stored as {cid}: it changed in staging",
                hint="capture the snapshot again",
            )


def previous_from_blob(
    index_cid: str,
    blob: bytes,
    facts: SourceFacts | None,
    limits: IndexLimits | None = None,
    sealer: Sealer | None = None,
) -> PreviousSnapshot | None:
    """The previous snapshot from its index blob, or None if the blob is unusable."""
    if blob_cid(blob) != index_cid:
        _log.warning("previous index %s does not match its CID; full capture", index_cid)
        return None
    try:
        index = parse_index(blob, limits, sealer)
    except IndexInvalid as exc:
        _log.warning(
            "previous snapshot %s is not a usable index (%s); full capture", index_cid, exc
        )
        return None
    return PreviousSnapshot(index_cid, index, facts)


def fetch_previous(
    store: BlobStore,
    index_cid: str,
    facts: SourceFacts | None,
    limits: IndexLimits | None = None,
    sealer: Sealer | None = None,
) -> PreviousSnapshot | None:
    """``previous_from_blob`` of the index in ``store``; None if it is unusable.

    Unusable: gone, corrupt, bigger than an index may be (a tar archive of an older
    snapshot, say), or not an index.

    Raises:
        StoreUnavailable: the store cannot be reached (retry later rather than capture
            everything again for an upload that would fail too).
    """
    limits = limits or IndexLimits()
    try:
        path = store.get(index_cid, max_bytes=limits.max_index_bytes)
        try:
            blob = path.read_bytes()
        finally:
            store.delete(index_cid, remote=False, local=True)
    except StoreUnavailable:
        raise
    except (StoreError, OSError) as exc:
        _log.warning("previous index %s unavailable (%s); full capture", index_cid, exc)
        return None
    return previous_from_blob(index_cid, blob, facts, limits, sealer)
