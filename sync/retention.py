"""Retiring superseded snapshots after a successful publish or apply (SPEC §7.9).

Every history entry older than the newest whose CID differs from the one to keep and
whose deletion has not yet succeeded (never tried, or failed before) gets a delete
attempt, and the outcome lands in that entry's ``deletion`` sub-record. Failures are
simply retried the next time this runs. Retirement is housekeeping: it never raises,
so a flaky store can never turn a successful publish or apply into a failure.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

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
    deletion = entry.data.get("deletion")
    return isinstance(deletion, dict) and deletion.get("deletion_succeeded") is True


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
            log.warning("retirement of %s failed, will retry next time: %s", entry.cid, error)
        try:
            history.update_deletion(entry, succeeded=error is None, error=error, at=now)
        except Exception:
            log.exception("retirement: could not record the outcome for %s", entry.cid)
        outcomes.append(RetireOutcome(entry.cid, error is None, error))
    return outcomes
