"""SyncManager: the start order, the start gate, the poll cadence and the disabled cases."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import pytest
from container_apps.errors import RegistryError
from container_apps.layout import DataDir
from container_apps.registries.memory import MemoryRegistry
from container_apps.sync.backend_gate import BackendGate
from container_apps.sync.config import SyncConfig
from container_apps.sync.consumer import SnapshotConsumer
from container_apps.sync.manager import SyncManager, SyncSite, build_sync_manager
from container_apps.sync.provider import SnapshotPublisher
from container_apps.sync.request_hold import RequestHold
from container_apps.tests.support.fakes import FakeContainers
from container_apps.tests.support.faults import FaultyRegistry, ScheduleEntry
from container_apps.volumes.binding import VolumeBinding

PROVIDER = {"ENABLED": True, "KEY": "k", "TYPE": "provider", "POLL_INTERVAL": 2}
CONSUMER = {"ENABLED": True, "KEY": "k", "TYPE": "consumer", "POLL_INTERVAL": 2}


def _site(tmp_path: Path, **kw: Any) -> SyncSite:
    paths = DataDir(tmp_path / "data").instance("app")
    paths.ensure()
    paths.volume_sync_dir.mkdir(parents=True)
    mount = paths.volume_mount("vol")
    mount.mkdir(parents=True)
    binding = VolumeBinding("vol", "fixed", mount, "/app/data")
    return SyncSite(paths=paths, bindings=[binding], node_id="node-a", **kw)


def _runner_state(site: SyncSite) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(site.paths.runner_state.read_text())
    return data


def test_disabled_sync_builds_an_inactive_manager(tmp_path: Path) -> None:
    site = _site(tmp_path)
    manager = build_sync_manager(SyncConfig.parse(None), site, FakeContainers())
    assert not manager.active
    assert manager.may_start()
    assert _runner_state(site)["role"] is None


def test_missing_system_volume_turns_sync_off_with_the_reason(tmp_path: Path) -> None:
    site = _site(tmp_path, system_volume_error="mkfs failed")
    manager = build_sync_manager(SyncConfig.parse(PROVIDER), site, FakeContainers())
    assert not manager.active
    assert "mkfs failed" in (manager.disabled_reason or "")
    assert "mkfs failed" in _runner_state(site)["sync_disabled_reason"]


def test_misconfigured_backend_url_turns_sync_off_with_the_key_to_fix(tmp_path: Path) -> None:
    site = _site(tmp_path, blobs_url="ftp://host/blobs")
    manager = build_sync_manager(SyncConfig.parse(PROVIDER), site, FakeContainers())
    assert not manager.active
    assert "STORAGE.BLOBS" in (manager.disabled_reason or "")


def test_a_broken_backend_is_an_outage_not_a_reason_to_turn_sync_off(tmp_path: Path) -> None:
    site = _site(tmp_path, blobs_url=f"file://{tmp_path / 'a-file'}/blobs")
    (tmp_path / "a-file").write_text("the blob directory cannot be created under a file")
    manager = build_sync_manager(SyncConfig.parse(PROVIDER), site, FakeContainers())
    assert manager.active and manager.disabled_reason is None
    manager.start()
    assert not manager.gate.is_open


def test_provider_config_builds_a_publisher_on_the_embedded_backends(tmp_path: Path) -> None:
    site = _site(tmp_path)
    manager = build_sync_manager(SyncConfig.parse(PROVIDER), site, FakeContainers())
    assert isinstance(manager.publisher, SnapshotPublisher)
    assert manager.consumer is None
    state = _runner_state(site)
    assert state["role"] == "provider"
    assert state["blob_store"].startswith("file://")
    assert state["registry"].startswith("sqlite://")


def test_consumer_config_builds_a_consumer(tmp_path: Path) -> None:
    manager = build_sync_manager(SyncConfig.parse(CONSUMER), _site(tmp_path), FakeContainers())
    assert isinstance(manager.consumer, SnapshotConsumer)
    assert manager.publisher is None


def _consumer_mock(*, halted: bool = False, needs_apply: bool = True) -> MagicMock:
    consumer = MagicMock(spec=SnapshotConsumer)
    consumer.is_halted.return_value = halted
    consumer.needs_initial_apply.return_value = needs_apply
    return consumer


def test_start_recovers_before_the_initial_apply() -> None:
    consumer = _consumer_mock()
    SyncManager(SyncConfig.parse(CONSUMER), consumer=consumer, wall_clock=lambda: 5.0).start()
    names = [c[0] for c in consumer.method_calls]
    assert names.index("recover") < names.index("apply_before_first_start")
    consumer.apply_before_first_start.assert_called_once_with(5.0)


def test_start_skips_the_initial_apply_when_already_applied() -> None:
    consumer = _consumer_mock(needs_apply=False)
    SyncManager(SyncConfig.parse(CONSUMER), consumer=consumer).start()
    consumer.apply_before_first_start.assert_not_called()


def test_halted_consumer_holds_the_start_until_the_halt_is_cleared() -> None:
    consumer = _consumer_mock(halted=True)
    manager = SyncManager(SyncConfig.parse(CONSUMER), consumer=consumer)
    manager.start()
    consumer.apply_before_first_start.assert_not_called()
    assert not manager.may_start()
    assert not manager.may_start()  # stays held across loop iterations
    consumer.is_halted.return_value = False  # `car sync retry` removed halt.json
    recoveries = consumer.recover.call_count
    assert manager.may_start()
    assert consumer.recover.call_count == recoveries + 1  # recovered before the start
    # ...and the current record is applied while the app is down: no second boot.
    consumer.apply_before_first_start.assert_called_once()
    names = [c[0] for c in consumer.method_calls]
    last_recover = len(names) - 1 - names[::-1].index("recover")
    assert last_recover < names.index("apply_before_first_start")
    assert manager.may_start()  # later gates do not recover or apply again
    assert consumer.apply_before_first_start.call_count == 1


def test_provider_start_recovers_a_stale_request() -> None:
    publisher = MagicMock(spec=SnapshotPublisher)
    SyncManager(SyncConfig.parse(PROVIDER), publisher=publisher).start()
    publisher.recover.assert_called_once_with()


def test_provider_shutdown_gives_a_waiting_publish_its_last_attempt() -> None:
    publisher = MagicMock(spec=SnapshotPublisher)
    SyncManager(SyncConfig.parse(PROVIDER), publisher=publisher).shutdown()
    publisher.shutdown.assert_called_once_with()


def test_shutdown_of_inactive_or_consumer_manager_does_nothing() -> None:
    SyncManager(SyncConfig.parse(None), disabled_reason="off").shutdown()
    consumer = _consumer_mock()
    SyncManager(SyncConfig.parse(CONSUMER), consumer=consumer).shutdown()
    assert consumer.method_calls == []


@pytest.mark.parametrize(
    ("ticks", "expected_calls"),
    [([0.0, 0.5, 1.9, 2.0, 3.9, 4.1], 3), ([0.0, 10.0, 20.0], 3), ([0.0, 1.0], 1)],
)
def test_ticks_are_throttled_by_poll_interval(ticks: list[float], expected_calls: int) -> None:
    publisher = MagicMock(spec=SnapshotPublisher)
    manager = SyncManager(SyncConfig.parse(PROVIDER), publisher=publisher, wall_clock=lambda: 7.0)
    for t in ticks:
        manager.tick(t)
    assert publisher.publish_pending.call_count == expected_calls
    publisher.publish_pending.assert_called_with(7.0)  # records use wall time, not monotonic


def test_inactive_manager_ticks_do_nothing() -> None:
    manager = SyncManager(SyncConfig.parse(None), disabled_reason="off")
    manager.tick(0.0)
    manager.start()
    assert manager.may_start()


def test_an_unexpected_error_in_a_tick_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    publisher = MagicMock(spec=SnapshotPublisher)
    publisher.publish_pending.side_effect = [RuntimeError("bug"), None]
    manager = SyncManager(SyncConfig.parse(PROVIDER), publisher=publisher)
    manager.tick(0.0)
    assert "volume-sync tick failed unexpectedly" in caplog.text
    manager.tick(5.0)  # the next tick runs again
    assert publisher.publish_pending.call_count == 2


def _shut_gate(failures: int) -> tuple[BackendGate, FaultyRegistry]:
    down: list[ScheduleEntry] = [RegistryError("file is not a database")] * failures
    registry = FaultyRegistry(MemoryRegistry(), faults={"check": down})
    return BackendGate([("registry", registry)], logging.getLogger("t")), registry


def test_provider_with_a_backend_down_holds_requests_until_it_is_back() -> None:
    gate, _ = _shut_gate(2)  # fails at start and at the first tick
    publisher = MagicMock(spec=SnapshotPublisher)
    hold = MagicMock(spec=RequestHold)
    manager = SyncManager(SyncConfig.parse(PROVIDER), publisher=publisher, gate=gate, hold=hold)
    manager.start()  # the start goes on
    publisher.recover.assert_called_once_with()  # local recovery needs no backend
    manager.tick(0.0)
    assert hold.hold.call_count == 1 and publisher.publish_pending.call_count == 0
    manager.tick(2.0)  # re-checked (backoff 2 s) and back
    hold.release.assert_called_once_with()
    publisher.publish_pending.assert_called_once()
    names = [c[0] for c in hold.method_calls]
    assert names == ["hold", "release"]


def test_consumer_with_a_backend_down_starts_the_app_unapplied_and_applies_once_back() -> None:
    gate, registry = _shut_gate(1)
    consumer = _consumer_mock()
    manager = SyncManager(SyncConfig.parse(CONSUMER), consumer=consumer, gate=gate)
    manager.start()
    consumer.recover.assert_called_once()  # the journal is resolved before any start
    consumer.apply_before_first_start.assert_not_called()
    assert manager.may_start()
    manager.tick(0.0)
    consumer.tick.assert_called_once()
    assert registry.count("check") == 2
