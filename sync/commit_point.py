"""CommitPoint: the registry write that makes a snapshot published (README, "Provider").

The registry's acknowledgement is the commit point. No ack, or an error: the record is
re-read once, and if it holds our CID the publish succeeded anyway. What this adds over a
single try is a *retry window* (``SYNC.PUBLISH_RETRY_SECONDS``): a registry blip longer
than the backend wrapper's own short retries no longer fails the publish. The window is
spent across the runner's ticks, one attempt per tick, never by sleeping here, so the
runner's loop (restart policy, signals) keeps going while the registry is away. Every
failed attempt is logged at DEBUG and its error kept in ``PendingCommit.last_error``: the
provider logs the outage once, with that error, so an outage is one WARNING when it starts
and one line when it ends (README, "Backends"), not one per attempt, re-read or tick.

Each attempt first runs the ``guard`` (the provider's lease, ``sync/lease_keeper.py``)
right before the write: a ``SyncError`` from it (the lease is another provider's) fails
the publish at once; any other error counts as a failed attempt, like a failed hset.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import SyncError
from ..registries.base import Registry
from . import constants as C
from .records import SyncRecord

_log = logging.getLogger(__name__)


@dataclass(slots=True)
class PendingCommit:
    """One record on its way into the registry."""

    record: SyncRecord
    started: float  # monotonic time of the first attempt
    deadline: float  # no new attempt is scheduled at or after this monotonic time
    attempts: int = 0
    last_error: str | None = None  # why the last attempt got no ack, for the one log line


class CommitPoint:
    """hset + one re-read per attempt, within a retry window."""

    def __init__(
        self,
        registry: Registry,
        sync_key: str,
        retry_seconds: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        log: logging.Logger = _log,
        guard: Callable[[], None] | None = None,
    ) -> None:
        self.registry = registry
        self.guard = guard
        self.sync_key = sync_key
        self.retry_seconds = retry_seconds
        self._monotonic = monotonic
        self._log = log

    def begin(self, record: SyncRecord) -> PendingCommit:
        """Open the retry window for ``record`` (now + ``retry_seconds``)."""
        now = self._monotonic()
        return PendingCommit(record, started=now, deadline=now + self.retry_seconds)

    def attempt(self, pending: PendingCommit) -> bool | None:
        """Write the record once; never raises.

        Returns:
            The registry's ack (True, or False when only the re-read showed our CID)
            once the registry holds the record; None while it does not.

        Raises:
            SyncError: the guard refused the write (another provider holds the key).
        """
        pending.attempts += 1
        pending.last_error = None
        record = pending.record
        try:
            if self.guard is not None:
                self.guard()
            if self.registry.hset(C.CHAINSTORE_HKEY, self.sync_key, record.to_json()):
                return True
        except SyncError:
            raise
        except Exception as exc:
            pending.last_error = str(exc)
            self._log.debug("registry hset failed (%s); re-reading once", exc)
        if not self._holds(pending):
            pending.last_error = pending.last_error or "the registry did not acknowledge the write"
            return None
        self._log.info(
            "registry write of %s not acknowledged (%s), but the re-read shows it: published",
            record.cid,
            pending.last_error or "no ack",
        )
        return False

    def expired(self, pending: PendingCommit) -> bool:
        """True once the retry window is over (checked after an attempt failed)."""
        return self._monotonic() >= pending.deadline

    def _holds(self, pending: PendingCommit) -> bool:
        try:
            current = self.registry.hget(C.CHAINSTORE_HKEY, self.sync_key)
            value = json.loads(current) if current is not None else None
        except Exception as exc:
            pending.last_error = pending.last_error or f"re-read failed: {exc}"
            self._log.debug("registry re-read failed: %s", exc)
            return False
        return isinstance(value, dict) and value.get("cid") == pending.record.cid
