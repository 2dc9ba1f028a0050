"""EventWatch: turns what the sync steps return and leave on disk into ``SyncEvents`` calls.

The steps already answer every publish (``PublishOutcome``) and apply (``ApplyOutcome``)
and keep the quarantine and halt state on disk; this reads those after each tick, so
the steps need no observer calls of their own. A quarantine is seen in the quarantine
file (it covers a malformed record too, which has no apply outcome); a halt in the
halt file. "recovered" follows a failure, quarantine or halt the first time the role
succeeds again (or the halt is cleared). An observer that raises is logged, never
passed on: alerts and metrics must not stop sync. Without an observer the watch reads
nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Concatenate, ParamSpec

from . import events as E
from .events import NoEvents, SyncEvent, SyncEvents, SyncState

if TYPE_CHECKING:
    from .apply_report import ApplyOutcome
    from .backend_gate import BackendGate
    from .consumer import SnapshotConsumer
    from .provider import PublishOutcome, SnapshotPublisher


_P = ParamSpec("_P")


def _never_raises(
    method: Callable[Concatenate[EventWatch, _P], None],
) -> Callable[Concatenate[EventWatch, _P], None]:
    """Reading state for metrics must not fail a tick or a start: log and go on."""

    def guarded(watch: EventWatch, /, *args: _P.args, **kwargs: _P.kwargs) -> None:
        try:
            method(watch, *args, **kwargs)
        except Exception:
            watch._log.exception("volume-sync metrics/alerts failed; sync goes on")

    guarded.__doc__ = method.__doc__
    return guarded


class EventWatch:
    """One role's events: call ``baseline`` at start, the ``after_*`` methods per tick."""

    def __init__(
        self,
        events: SyncEvents | None,
        key: str,
        log: logging.Logger,
        *,
        publisher: SnapshotPublisher | None = None,
        consumer: SnapshotConsumer | None = None,
        gate: BackendGate | None = None,
    ) -> None:
        self._events: SyncEvents = events or NoEvents()
        self._active = events is not None
        self._key = key
        self._log = log
        self._publisher = publisher
        self._consumer = consumer
        self._gate = gate
        self._role = E.ROLE_CONSUMER if consumer is not None else E.ROLE_PROVIDER
        self._failing = False  # a failure, quarantine or halt not yet followed by a success
        self._halted = False
        self._quarantine_seen: dict[tuple[str, str], int] = {}
        self._published: tuple[str | None, int | None] = (None, None)
        self._tick_ok = True

    # --- start -----------------------------------------------------------------------------
    @_never_raises
    def baseline(self, now: float) -> None:
        """At start: take what is on disk as known (no events for it), report the state."""
        if not self._active:
            return
        if self._consumer is not None:
            self._halted = self._consumer.is_halted()
            self._failing = self._halted
            self._quarantine_seen = self._quarantine_counts()
        self.report_state(now)

    # --- per tick --------------------------------------------------------------------------
    def begin_tick(self) -> None:
        self._tick_ok = True

    @_never_raises
    def after_publish(self, outcome: PublishOutcome | None, now: float) -> None:
        """A provider tick's answer: ``published`` or ``publish_failed`` (nothing while waiting)."""
        if not self._active:
            return
        if outcome is None or outcome.status == "in_progress":
            return
        response = outcome.response
        if outcome.status == "ok":
            self._published = (outcome.cid, _int(response.get("version")))
            self._succeeded(now)
            self._emit(
                E.EVENT_PUBLISHED,
                now,
                cid=outcome.cid,
                version=_int(response.get("version")),
                downtime_seconds=_float(response.get("downtime_seconds")),
                size_bytes=_int(response.get("archive_size_bytes")),
            )
            return
        self._failing = True
        self._tick_ok = False
        error = response.get("error")
        self._emit(
            E.EVENT_PUBLISH_FAILED,
            now,
            stage=outcome.stage,
            error=error if isinstance(error, str) else None,
        )

    @_never_raises
    def after_apply(self, outcome: ApplyOutcome | None, now: float) -> None:
        """A consumer tick (or the first-start apply): applied, quarantined, halted."""
        if not self._active:
            return
        if outcome is not None and outcome.applied:
            self._succeeded(now)
            self._emit(
                E.EVENT_APPLIED,
                now,
                cid=outcome.cid,
                version=outcome.version,
                downtime_seconds=outcome.downtime_seconds,
                size_bytes=outcome.size_bytes,
            )
        self._check_quarantine(now)
        self.check_halt(now)

    @_never_raises
    def check_halt(self, now: float) -> None:
        """A halt entered is ``halted``; a halt cleared (``car sync retry``) is ``recovered``."""
        if not self._active:
            return
        if self._consumer is None:
            return
        halted = self._consumer.is_halted()
        if halted and not self._halted:
            self._failing = True
            reason = self._consumer.halt_reason()
            self._emit(E.EVENT_HALTED, now, cid=self._consumer.state.load().cid, error=reason)
        elif self._halted and not halted:
            self._succeeded(now)
        self._halted = halted
        if halted:
            self._tick_ok = False

    @_never_raises
    def end_tick(self, now: float, *, ran: bool) -> None:
        """After a tick that ``ran`` with its backends reachable: state, then the heartbeat."""
        if not self._active:
            return
        self.report_state(now)
        if ran and self._tick_ok:
            self._call(lambda: self._events.on_cycle_ok(now))

    def report_state(self, now: float) -> None:
        state = SyncState(
            role=self._role,
            key=self._key,
            quarantined=len(self._quarantine_seen),
            halted=self._halted,
            cid=self._current()[0],
            version=self._current()[1],
            backends_up=self._backends_up(),
        )
        self._call(lambda: self._events.on_state(state))

    # --- helpers ---------------------------------------------------------------------------
    def _succeeded(self, now: float) -> None:
        if self._failing:
            self._failing = False
            cid, version = self._current()
            self._emit(E.EVENT_RECOVERED, now, cid=cid, version=version)

    def _check_quarantine(self, now: float) -> None:
        """A quarantine entry that is new, or failed again, is a ``quarantined`` event."""
        assert self._consumer is not None
        counts = self._quarantine_counts()
        for entry in self._consumer.quarantine.entries():
            key = (entry.cid, entry.manifest_digest)
            if entry.failures > self._quarantine_seen.get(key, 0):
                self._failing = True
                self._tick_ok = False
                self._emit(
                    E.EVENT_QUARANTINED,
                    now,
                    cid=entry.cid or None,
                    stage=entry.stage,
                    error=entry.error,
                )
        self._quarantine_seen = counts

    def _quarantine_counts(self) -> dict[tuple[str, str], int]:
        assert self._consumer is not None
        entries = self._consumer.quarantine.entries()
        return {(e.cid, e.manifest_digest): e.failures for e in entries}

    def _current(self) -> tuple[str | None, int | None]:
        if self._consumer is None:
            return self._published
        current = self._consumer.state.load()
        return current.applied_cid, current.applied_version

    def _backends_up(self) -> tuple[tuple[str, bool], ...]:
        up = dict(self._gate.reachability()) if self._gate is not None else {}
        if self._consumer is not None:
            # Once the gate is open, the steps meet later outages (sync/backend_gate.py).
            up["registry"] = up.get("registry", True) and self._consumer.registry_up
            up["blob store"] = up.get("blob store", True) and self._consumer.store_up
        if self._publisher is not None and self._publisher.waiting_for_registry:
            up["registry"] = False
        return tuple(sorted(up.items()))

    def _emit(
        self,
        event: str,
        now: float,
        *,
        cid: str | None = None,
        version: int | None = None,
        stage: str | None = None,
        error: str | None = None,
        downtime_seconds: float | None = None,
        size_bytes: int | None = None,
    ) -> None:
        sync_event = SyncEvent(
            event,
            self._role,
            self._key,
            now,
            cid,
            version,
            stage,
            error,
            downtime_seconds,
            size_bytes,
        )
        self._call(lambda: self._events.on_event(sync_event))

    def _call(self, call: Callable[[], None]) -> None:
        try:
            call()
        except Exception:
            self._log.exception("volume-sync metrics/alerts observer failed; sync goes on")


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
