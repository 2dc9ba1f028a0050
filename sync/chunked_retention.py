"""Provider retirement for every snapshot format (docs/FORMAT.md, "Retention (provider)").

A tar snapshot is one blob: retiring it deletes that blob (``retention.py``). A chunked
snapshot is an index blob plus the packs its chunks live in, and packs are shared: a
chunk that did not change is stored once and every later index points at the same
pack. So retiring a chunked snapshot

1. reads its index (from the store: it is still there until step 3),
2. deletes each pack it references that no *kept* index references,
3. deletes the index last.

A pack a kept index references is never deleted. Kill -9 anywhere leaves at worst an
index whose packs are partly gone; it is superseded (the registry names a newer
snapshot), its history entry is not marked retired, so the next publish reads it again
and finishes the job. A consumer still fetching it meanwhile gets a clear missing-pack
error (quarantined, its volume untouched) and moves on to the newer record.

When a kept index cannot be read, nothing chunked is retired (its packs are unknown, so
any pack could be one of them); the entries are retried at the next publish. A
superseded index that is gone or unreadable has packs nobody can name any more: the
index is deleted and the leak logged.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from pathlib import Path

from ..errors import BlobCorrupt, BlobNotFound, BlobTooLarge, StoreError
from ..stores.base import BlobStore
from . import constants as C
from .chunks.index import SnapshotIndex
from .chunks.index_parse import IndexInvalid, IndexLimits, parse_index
from .crypto.framing import Sealer
from .history import HistoryEntry, HistoryLog
from .retention import RetireOutcome, is_retired, record_retirement

# Our own indexes: bounded in bytes like any index, but not by a consumer's entry limits.
OWN_INDEX_LIMITS = IndexLimits(max_entries=2**40, max_total_bytes=2**62)


def entry_format(entry: HistoryEntry) -> str | None:
    """The ``archive_format`` a history entry's manifest names, if any."""
    manifest = entry.data.get("manifest")
    fmt = manifest.get("archive_format") if isinstance(manifest, dict) else None
    return fmt if isinstance(fmt, str) else None


def is_chunked(entry: HistoryEntry) -> bool:
    return entry_format(entry) == C.ARCHIVE_FORMAT_CHUNKED


def newest_cids(entries: list[HistoryEntry], count: int, *, besides: str = "") -> list[str]:
    """The ``count`` most recently written distinct CIDs (not ``besides``), newest first.

    Entries whose retirement was already attempted are superseded for good and never
    kept again, whatever ``KEEP_SNAPSHOTS`` says now.
    """
    found: list[str] = []
    for entry in reversed(entries):
        if len(found) >= count:
            break
        touched = (entry.data.get("deletion") or {}).get("deleted_at") is not None
        if entry.cid and entry.cid != besides and entry.cid not in found and not touched:
            found.append(entry.cid)
    return found


def read_index(
    store: BlobStore,
    cid: str,
    limits: IndexLimits = OWN_INDEX_LIMITS,
    sealer: Sealer | None = None,
) -> SnapshotIndex:
    """The index blob ``cid`` from ``store``, opened with ``sealer`` if sealed, parsed
    (its local copy removed again).

    Raises:
        BlobNotFound: the store does not hold it.
        StoreError: it cannot be fetched (``StoreUnavailable`` when transient).
        IndexInvalid: it is not a readable index.
    """
    path = store.get(cid, max_bytes=limits.max_index_bytes)
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise StoreError(f"index {cid} could not be read locally: {exc.strerror}") from exc
    finally:
        store.delete(cid, remote=False, local=True)
    return parse_index(blob, limits, sealer)


def snapshot_blobs(blob_dir: Path, cid: str) -> list[str]:
    """The blobs of one snapshot in a ``file://`` store: its CID, and its packs if chunked."""
    try:
        packs = parse_index((blob_dir / cid).read_bytes(), OWN_INDEX_LIMITS).packs()
    except (OSError, IndexInvalid):  # gone, or a tar archive
        packs = []
    return [*packs, cid]


def retire_snapshots(
    history: HistoryLog,
    store: BlobStore,
    keep: Collection[str],
    kept_indexes: Iterable[SnapshotIndex | None],
    *,
    now: float,
    log: logging.Logger,
    sealer: Sealer | None = None,
) -> list[RetireOutcome]:
    """Delete every published snapshot in ``history`` whose CID is not in ``keep``.

    Args:
        history: the provider's sent history.
        store: where the blobs live (deleted remotely and locally).
        keep: CIDs never deleted, whatever entry names them.
        kept_indexes: the parsed index of each kept chunked snapshot; a None means one
            could not be read, and then no chunked snapshot is retired this time.
        now: wall-clock time recorded as ``deleted_at``.
        log: where outcomes are reported.
        sealer: opens the indexes of encrypted snapshots (to name their packs).

    Returns:
        One outcome per attempted entry, oldest first. Never raises.
    """
    indexes = list(kept_indexes)
    kept_packs = None if None in indexes else {p for i in indexes if i for p in i.packs()}
    outcomes: list[RetireOutcome] = []
    try:
        entries = [e for e in history.entries() if e.cid and e.cid not in keep]
    except Exception:  # housekeeping must not fail the caller
        log.exception("retirement: could not read the history")
        return outcomes
    for entry in entries:
        if is_retired(entry):
            continue
        if is_chunked(entry):
            if kept_packs is None:
                log.warning("retirement of %s postponed: a kept index is unreadable", entry.cid)
                continue
            error = _retire_chunked(store, entry.cid, kept_packs, log, sealer)
        else:
            error = _delete(store, entry.cid)
        outcomes.append(record_retirement(history, entry, error, now, log))
    return outcomes


def retire_published(
    history: HistoryLog,
    store: BlobStore,
    newest: str,
    *,
    keep: int,
    newest_index: SnapshotIndex | None,
    now: float,
    log: logging.Logger,
    sealer: Sealer | None = None,
) -> list[RetireOutcome]:
    """After a publish: keep the ``keep`` newest snapshots, retire the rest.

    Args:
        newest: the CID just published (kept whatever ``keep`` says).
        keep: ``SYNC.KEEP_SNAPSHOTS``.
        newest_index: its index when it is chunked (None for a tar snapshot).

    Returns:
        As ``retire_snapshots``. Never raises.
    """
    try:
        entries = history.entries()
    except Exception:
        log.exception("retirement: could not read the history")
        return []
    kept = [newest, *newest_cids(entries, keep - 1, besides=newest)]
    formats = {e.cid: entry_format(e) for e in entries}
    indexes: list[SnapshotIndex | None] = [newest_index]
    for cid in kept[1:]:
        if formats.get(cid) == C.ARCHIVE_FORMAT_CHUNKED:
            indexes.append(_kept_index(store, cid, log, sealer))
    return retire_snapshots(history, store, kept, indexes, now=now, log=log, sealer=sealer)


def _kept_index(
    store: BlobStore, cid: str, log: logging.Logger, sealer: Sealer | None
) -> SnapshotIndex | None:
    try:
        return read_index(store, cid, sealer=sealer)
    except (StoreError, IndexInvalid) as exc:
        log.warning("kept snapshot %s: index unreadable (%s)", cid, exc)
        return None


def _delete(store: BlobStore, cid: str) -> str | None:
    try:
        store.delete(cid, remote=True, local=True)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _retire_chunked(
    store: BlobStore, cid: str, kept_packs: set[str], log: logging.Logger, sealer: Sealer | None
) -> str | None:
    """Packs only this index references, then the index; the error text or None."""
    try:
        index = read_index(store, cid, sealer=sealer)
    except BlobNotFound:
        return None  # an earlier attempt finished; only its outcome was not recorded
    except (IndexInvalid, BlobCorrupt, BlobTooLarge) as exc:
        log.warning("index %s is unreadable (%s): its packs cannot be named", cid, exc)
        return _delete(store, cid)
    except StoreError as exc:  # unavailable, or corrupt: the packs stay until it reads
        return f"{type(exc).__name__}: {exc}"
    for pack in index.packs():
        if pack not in kept_packs:
            error = _delete(store, pack)
            if error is not None:
                return f"pack {pack}: {error}"
    return _delete(store, cid)


def delete_packs(store: BlobStore, packs: Iterable[str], log: logging.Logger) -> None:
    """Best-effort delete of packs a failed publish uploaded (never raises)."""
    for pack in packs:
        error = _delete(store, pack)
        if error is not None:
            log.warning("could not delete unpublished pack %s: %s", pack, error)
