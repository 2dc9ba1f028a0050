"""SyncEvents: what sync tells the outside (metrics, alerts) about its work, as plain calls.

A small observer interface, like Litestream's one replica client interface: the sync
manager calls it at the points where the steps already answer the app or write history
(README, "Operating"), and knows nothing about Prometheus or webhooks. ``ops/`` holds the
implementations; ``NoEvents`` is the default, so a runner without ``METRICS_ADDR`` or
``NOTIFY`` pays nothing. An observer must return at once and never raise: it runs on the
sync tick (a webhook is queued, never sent from here).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

# SyncEvent.event values (the alert payload's "event"; README, "Metrics and alerts").
EVENT_PUBLISHED = "published"
EVENT_PUBLISH_FAILED = "publish_failed"
EVENT_APPLIED = "applied"
EVENT_QUARANTINED = "quarantined"
EVENT_HALTED = "halted"
EVENT_RECOVERED = "recovered"

ROLE_PROVIDER = "provider"
ROLE_CONSUMER = "consumer"

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SyncEvent:
    """One thing that happened to a sync role; ``timestamp`` is wall-clock seconds."""

    event: str
    role: str
    key: str
    timestamp: float
    cid: str | None = None
    version: int | None = None
    stage: str | None = None
    error: str | None = None
    downtime_seconds: float | None = None
    size_bytes: int | None = None  # the snapshot's archive_size_bytes (docs/FORMAT.md)


@dataclass(frozen=True, slots=True)
class SyncState:
    """What a role holds now, reported after each tick (gauges, not events)."""

    role: str
    key: str
    quarantined: int = 0  # quarantined snapshots (``car sync status`` lists them)
    halted: bool = False
    cid: str | None = None  # the applied (consumer) or last published (provider) snapshot
    version: int | None = None
    backends_up: tuple[tuple[str, bool], ...] = ()  # ("registry", True), ...


class SyncEvents(Protocol):
    """The observer the sync manager calls; every method returns at once and never raises."""

    def on_event(self, event: SyncEvent) -> None:
        """Something happened: a publish or apply finished, a quarantine, a halt, a recovery."""

    def on_state(self, state: SyncState) -> None:
        """The role's current state, after every tick and at start."""

    def on_cycle_ok(self, now: float) -> None:
        """A tick cycle finished with backends reachable and nothing failing (the heartbeat)."""


class NoEvents:
    """The default observer: does nothing."""

    def on_event(self, event: SyncEvent) -> None:
        pass

    def on_state(self, state: SyncState) -> None:
        pass

    def on_cycle_ok(self, now: float) -> None:
        pass


class FanOut:
    """Forwards every call to several observers (metrics and alerts), in order.

    One observer that raises (a bug) is logged and does not keep the others uninformed.
    """

    def __init__(self, observers: Sequence[SyncEvents], log: logging.Logger = _log) -> None:
        self._observers = tuple(observers)
        self._log = log

    def on_event(self, event: SyncEvent) -> None:
        self._each(lambda observer: observer.on_event(event))

    def on_state(self, state: SyncState) -> None:
        self._each(lambda observer: observer.on_state(state))

    def on_cycle_ok(self, now: float) -> None:
        self._each(lambda observer: observer.on_cycle_ok(now))

    def _each(self, call: Callable[[SyncEvents], None]) -> None:
        for observer in self._observers:
            try:
                call(observer)
            except Exception:
                self._log.exception("%s failed; the others still run", type(observer).__name__)
