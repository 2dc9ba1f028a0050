"""BackendGate: check at start, re-check with backoff while down, one line per state change."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from container_apps.errors import RegistryError, RegistryUnavailable, StoreUnavailable
from container_apps.registries.memory import MemoryRegistry
from container_apps.stores.memory import MemoryBlobStore
from container_apps.sync.backend_gate import BackendGate
from container_apps.tests.support.faults import FaultyBlobStore, FaultyRegistry

LOG = logging.getLogger("test.gate")


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_all_backends_up_opens_the_gate_and_later_ticks_check_nothing(tmp_path: Path) -> None:
    store = FaultyBlobStore(MemoryBlobStore(tmp_path))
    registry = FaultyRegistry(MemoryRegistry())
    gate = BackendGate([("blob store", store), ("registry", registry)], LOG)
    assert gate.check_all() and gate.is_open
    for now in range(10):
        assert gate.ready(float(now))
    assert (store.count("check"), registry.count("check")) == (1, 1)


def test_a_failed_backend_is_rechecked_with_exponential_backoff_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    down = [RegistryError("file is not a database")] * 5
    registry = FaultyRegistry(MemoryRegistry(), faults={"check": list(down)})
    store = FaultyBlobStore(MemoryBlobStore(tmp_path))
    gate = BackendGate([("blob store", store), ("registry", registry)], LOG, first_retry=2.0)
    assert not gate.check_all()
    checked_at = []
    for now in range(40):
        before = registry.count("check")
        gate.ready(float(now))
        if registry.count("check") > before:
            checked_at.append(now)
    # start, then the first tick (t=0), t=2, t=6 and t=14 fail; t=30 passes.
    assert checked_at == [0, 2, 6, 14, 30]
    assert registry.count("check") == 6
    assert store.count("check") == 1  # the store passed at start and is not checked again
    registry.assert_all_faults_fired()
    assert gate.is_open
    assert len(_warnings(caplog)) == 1
    assert "registry memory:// unavailable" in _warnings(caplog)[0]
    assert "not a database" in _warnings(caplog)[0]
    assert [r.getMessage() for r in caplog.records if "reachable again" in r.getMessage()] == [
        "registry memory:// reachable again"
    ]


def test_backoff_is_capped(tmp_path: Path) -> None:
    registry = FaultyRegistry(
        MemoryRegistry(), faults={"check": [RegistryUnavailable("down")] * 100}
    )
    gate = BackendGate([("registry", registry)], LOG, first_retry=1.0, max_retry=4.0)
    gate.check_all()
    times = []
    for now in range(0, 30):
        before = registry.count("check")
        gate.ready(float(now))
        if registry.count("check") > before:
            times.append(now)
    assert times == [0, 1, 3, 7, 11, 15, 19, 23, 27]


def test_an_untranslated_error_in_a_check_is_an_outage_not_a_crash(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FaultyBlobStore(MemoryBlobStore(tmp_path), faults={"check": [OSError("boom")]})
    gate = BackendGate([("blob store", store)], LOG)
    assert not gate.check_all()
    assert "OSError: boom" in _warnings(caplog)[0]
    assert gate.ready(0.0)


def test_ready_before_check_all_checks_first(tmp_path: Path) -> None:
    store = FaultyBlobStore(MemoryBlobStore(tmp_path), faults={"check": [StoreUnavailable("x")]})
    gate = BackendGate([("blob store", store)], LOG)
    assert not gate.ready(0.0)
    assert gate.ready(0.0)  # the first tick after a failed check re-checks at once
