"""The sync manager's observer calls (README, "Metrics and alerts"), on local backends.

An observer that raises must not change what sync does; a halt entered and cleared
(``car sync retry``) is ``halted`` then ``recovered``; a publish waiting for the
registry is no event yet.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from container_apps.sync import events as E
from container_apps.sync.config import SyncConfig
from container_apps.sync.events import FanOut, SyncEvent, SyncState
from container_apps.sync.manager import SyncManager, SyncSite, build_sync_manager
from container_apps.tests.support.fakes import FakeContainers
from container_apps.tests.support.outage_helpers import KEY, make_site, request, response


class Recorder:
    """Keeps every call; ``fail`` makes each call raise after recording it."""

    def __init__(self, *, fail: bool = False) -> None:
        self.events: list[SyncEvent] = []
        self.states: list[SyncState] = []
        self.cycles = 0
        self.fail = fail

    def on_event(self, event: SyncEvent) -> None:
        self.events.append(event)
        self._maybe_fail()

    def on_state(self, state: SyncState) -> None:
        self.states.append(state)
        self._maybe_fail()

    def on_cycle_ok(self, now: float) -> None:
        self.cycles += 1
        self._maybe_fail()

    def _maybe_fail(self) -> None:
        if self.fail:
            raise RuntimeError("observer broken")


def _manager(role: str, site: SyncSite, recorder: Recorder) -> SyncManager:
    raw: dict[str, Any] = {"ENABLED": True, "KEY": KEY, "TYPE": role, "POLL_INTERVAL": 1}
    return build_sync_manager(SyncConfig.parse(raw), site, FakeContainers(), events=recorder)


def test_a_raising_observer_changes_nothing_sync_does(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder(fail=True)
    site = make_site(tmp_path, blobs=None, registry=None)
    manager = _manager("provider", site, recorder)
    manager.start()
    request(site, '{"archive_paths": ["/app/data"]}')
    with caplog.at_level(logging.ERROR):
        manager.tick(1.0)
    assert (response(site) or {}).get("status") == "ok"
    assert [e.event for e in recorder.events] == [E.EVENT_PUBLISHED]
    assert any("observer failed" in r.getMessage() for r in caplog.records)
    assert not any("tick failed unexpectedly" in r.getMessage() for r in caplog.records)


def test_a_halt_and_its_clearing_are_halted_then_recovered(tmp_path: Path) -> None:
    recorder = Recorder()
    site = make_site(tmp_path, blobs=None, registry=None)
    manager = _manager("consumer", site, recorder)
    manager.start()
    manager.tick(1.0)
    assert recorder.events == [] and recorder.cycles == 1
    assert manager.consumer is not None
    manager.consumer.state.halt("rollback unproven", now=100.0)
    manager.tick(2.0)
    assert not manager.may_start()  # the runner asks before each start; the app stays down
    manager.tick(3.0)
    assert [e.event for e in recorder.events] == [E.EVENT_HALTED]
    assert recorder.events[0].error == "rollback unproven"
    assert recorder.states[-1].halted and recorder.cycles == 1  # no heartbeat while halted
    assert manager.consumer.clear_halt()
    assert manager.may_start()
    assert [e.event for e in recorder.events] == [E.EVENT_HALTED, E.EVENT_RECOVERED]
    manager.tick(4.0)
    assert recorder.cycles == 2 and not recorder.states[-1].halted


def test_fan_out_informs_every_observer_even_after_one_raised() -> None:
    broken, healthy = Recorder(fail=True), Recorder()
    fan = FanOut([broken, healthy])
    event = SyncEvent(E.EVENT_QUARANTINED, E.ROLE_CONSUMER, KEY, 1.0)
    fan.on_event(event)
    fan.on_cycle_ok(1.0)
    assert healthy.events == [event] and healthy.cycles == 1
