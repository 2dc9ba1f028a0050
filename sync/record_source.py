"""RecordSource: the consumer's view of the registry (README, "Consumer").

Refreshes the local replica (``hsync``) at most every ``HSYNC_POLL_INTERVAL``; a failed
refresh is retried after min(30 s, interval). The record itself is read on every call
(a replica read is cheap). Outages are logged once per state change, not every tick:
"registry unavailable" when it goes down, "registry reachable again" when it is back;
a key nobody publishes yet likewise ("no record for KEY yet", then "a record for KEY
appeared").
"""

from __future__ import annotations

import logging

from ..errors import CarError
from ..registries.base import Registry
from . import constants as C


class OutageLog:
    """Logs a backend's outage once when it starts and once when it ends."""

    def __init__(self, what: str, log: logging.Logger) -> None:
        self._what = what
        self._log = log
        self.down = False

    def failed(self, exc: BaseException) -> None:
        if not self.down:
            self._log.warning("%s unavailable, will retry: %s", self._what, exc)
        self.down = True

    def ok(self) -> None:
        if self.down:
            self._log.info("%s reachable again", self._what)
        self.down = False


class RecordSource:
    """Reads the latest record text for one sync key."""

    def __init__(
        self, registry: Registry, key: str, hsync_interval: float, log: logging.Logger
    ) -> None:
        self._registry = registry
        self._key = key
        self._interval = hsync_interval
        self._next_hsync: float | None = None
        self._sync_outage = OutageLog(f"registry refresh ({registry.describe()})", log)
        self._read_outage = OutageLog(f"registry {registry.describe()}", log)
        self._log = log
        self._absent_logged = False  # "no record yet" said once; said again when one appears

    @property
    def key(self) -> str:
        """The sync key whose record this source reads (``SYNC.KEY``)."""
        return self._key

    @property
    def reachable(self) -> bool:
        """False while the last registry read failed (reported to metrics)."""
        return not self._read_outage.down

    def _refresh(self, now: float) -> None:
        if self._next_hsync is not None and now < self._next_hsync:
            return
        try:
            self._registry.hsync(C.CHAINSTORE_HKEY)
        except CarError as exc:
            self._next_hsync = now + min(C.HSYNC_FAILURE_RETRY_CAP, self._interval)
            self._sync_outage.failed(exc)
            return
        self._sync_outage.ok()
        self._next_hsync = now + self._interval

    def read(self, now: float) -> str | None:
        """Refresh if due, then the record text (None if absent or the registry is down)."""
        self._refresh(now)
        try:
            value = self._registry.hget(C.CHAINSTORE_HKEY, self._key)
        except CarError as exc:
            self._read_outage.failed(exc)
            return None
        self._read_outage.ok()
        self._note_presence(value is not None)
        return value

    def _note_presence(self, present: bool) -> None:
        """One line when the key has no record (nobody publishes it yet), one when it has."""
        if not present and not self._absent_logged:
            self._log.info("no record for %s yet", self._key)
            self._absent_logged = True
        elif present and self._absent_logged:
            self._log.info("a record for %s appeared", self._key)
            self._absent_logged = False
