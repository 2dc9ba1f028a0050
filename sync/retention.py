"""Retiring superseded snapshots after a successful publish or apply (README,
"Retirement").

Every history entry older than the newest whose CID differs from the one to keep and
whose deletion has not yet succeeded (never tried, or failed before) gets a delete
attempt, and the outcome lands in that entry's ``deletion`` sub-record. Failures are
simply retried the next time this runs. Retirement is housekeeping: it never raises,
so a flaky store can never turn a successful publish or apply into a failure.

``delete_unpublished`` is the other way a provider's blob goes: uploaded, never
published. A snapshot published while the sent history could not be written has no
entry to find; ``UnrecordedCids`` keeps those CIDs in a small state file so they are
retired too, also after a restart.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..fsutil import atomic_write_json
from ..stores.base import BlobStore
from .history import HistoryEntry, HistoryLog


@dataclass(frozen=True, slots=True)
class RetireOutcome:
    """What happened to one superseded CID."""

    cid: str
    succeeded: bool
    error: str | None


def is_retired(entry: HistoryEntry) -> bool:
    """True once a deletion of the entry's CID succeeded (its ``deletion`` sub-record)."""
    return entry.deletion.retired


def _pending(entries: list[HistoryEntry], keep_cid: str) -> list[HistoryEntry]:
    return [e for e in entries if e.cid and e.cid != keep_cid and not is_retired(e)]


def retire_superseded(
    history: HistoryLog,
    store: BlobStore,
    keep_cid: str,
    *,
    remote: bool,
    local: bool,
    now: float,
    log: logging.Logger,
) -> list[RetireOutcome]:
    """Delete every older, not yet retired CID in ``history`` except ``keep_cid``.

    Args:
        history: the sent (provider) or received (consumer) log.
        store: where the blobs live.
        keep_cid: the newest CID; never deleted, whatever entry names it.
        remote: delete the shared copy (provider) or not (consumer: never remote).
        local: delete this node's local copy.
        now: wall-clock time recorded as ``deleted_at``.
        log: where failures are reported.

    Returns:
        One outcome per attempted entry, oldest first. Never raises.
    """
    outcomes: list[RetireOutcome] = []
    try:
        entries = _pending(history.entries(), keep_cid)
    except Exception:  # housekeeping must not fail the caller
        log.exception("retirement: could not read the history")
        return outcomes
    for entry in entries:
        error: str | None = None
        try:
            store.delete(entry.cid, remote=remote, local=local)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        outcomes.append(record_retirement(history, entry, error, now, log))
    return outcomes


def record_retirement(
    history: HistoryLog, entry: HistoryEntry, error: str | None, now: float, log: logging.Logger
) -> RetireOutcome:
    """Log a failed deletion and write the outcome into ``entry``'s history; never raises.

    Shared by every retirement (tar blobs here, chunked snapshots in
    ``chunked_retention.py``), so an entry's ``deletion`` is written one way.
    """
    if error is not None:
        log.warning("retirement of %s failed, will retry next time: %s", entry.cid, error)
    try:
        history.update_deletion(entry, succeeded=error is None, error=error, at=now)
    except Exception:
        log.exception("retirement: could not record the outcome for %s", entry.cid)
    return RetireOutcome(entry.cid, error is None, error)


def delete_unpublished(
    store: BlobStore, history: HistoryLog, cid: str, log: logging.Logger
) -> None:
    """Best-effort delete of a blob a provider uploaded but could not publish; never raises.

    Stores are content-addressed: unchanged data uploads to the CID an earlier
    publish already made, which the registry's record may still name. That blob
    is kept; retirement deletes it once it is superseded.
    """
    if _published_before(history, cid, log):
        log.info("kept blob %s: an earlier publish of this node names it", cid)
        return
    try:
        store.delete(cid, remote=True, local=True)
    except Exception as exc:
        log.warning("could not delete unpublished blob %s: %s", cid, exc)


def _published_before(history: HistoryLog, cid: str, log: logging.Logger) -> bool:
    try:
        entries = history.entries()
    except Exception as exc:  # unknown: keeping a blob is the safe side
        log.warning("sent history unreadable (%s); keeping blob %s", exc, cid)
        return True
    return any(e.cid == cid and not is_retired(e) for e in entries)


class UnrecordedCids:
    """CIDs a provider published while its sent history could not be written (README, "Retirement").

    ``retire_superseded`` finds what to retire in the history, where these have no
    entry; without this list their blobs would stay in the store for good. The list
    lives in ``path`` (``sync_state/unrecorded_cids.json``, ``{"cids": [...]}``, written
    atomically) so a restart does not forget it. The disk that refused the history may
    refuse this file too: the set is then kept in memory and written again at the next
    change, and the failure is logged. An unreadable file is moved aside (never
    deleted: it may be the only trace of a blob to clean up by hand) and logged.
    """

    def __init__(self, path: Path, log: logging.Logger) -> None:
        self.path = path
        self._log = log
        self._cids = self._load()

    @property
    def cids(self) -> frozenset[str]:
        return frozenset(self._cids)

    def add(self, cid: str) -> None:
        """Remember ``cid`` (durably, if the state dir can be written)."""
        self._cids.add(cid)
        self._save()

    def retire(self, store: BlobStore, keep: str) -> None:
        """Delete every remembered CID but ``keep`` (remote and local); never raises."""
        retired = False
        for cid in sorted(self._cids - {keep}):
            try:
                store.delete(cid, remote=True, local=True)
            except Exception as exc:
                self._log.warning("retirement of unrecorded %s failed, will retry: %s", cid, exc)
                continue
            self._cids.discard(cid)
            retired = True
            self._log.info("retired %s (published while the history was unwritable)", cid)
        if retired:
            self._save()

    def _load(self) -> set[str]:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return set()
        except OSError as exc:
            self._log.warning("could not read %s: %s", self.path.name, exc)
            return set()
        try:
            cids = json.loads(raw)["cids"]
            if not isinstance(cids, list) or not all(isinstance(c, str) and c for c in cids):
                raise ValueError("cids is not a list of CIDs")
        except (ValueError, KeyError, TypeError) as exc:
            self._set_aside(exc)
            return set()
        return set(cids)

    def _set_aside(self, exc: Exception) -> None:
        aside = self.path.with_name(f"{self.path.name}.unreadable.{time.time_ns()}")
        try:
            os.replace(self.path, aside)
        except OSError as move_exc:
            self._log.warning("could not move %s aside: %s", self.path.name, move_exc)
            return
        self._log.warning(
            "%s was unreadable (%s); moved to %s: CIDs listed there are not retired",
            self.path.name,
            exc,
            aside.name,
        )

    def _save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.path, {"cids": sorted(self._cids)})
        except Exception as exc:  # kept in memory; written again at the next change
            self._log.warning("could not write %s: %s", self.path.name, exc)
