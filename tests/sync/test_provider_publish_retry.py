"""A registry outage during publish: retried for SYNC.PUBLISH_RETRY_SECONDS (README).

The publish waits across ticks instead of blocking the runner's loop: each tick that
finds the registry still down returns at once with the request ``in_progress``; once the
retry time is over the request fails at ``chainstore_publish`` and the uploaded blob is
deleted, as a failed publish always did.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from container_apps.errors import RegistryUnavailable
from container_apps.registries.factory import open_registry
from container_apps.registries.memory import MemoryRegistry
from container_apps.sync import constants as C
from container_apps.sync.records import parse_record
from container_apps.tests.support.fakes import FakeClock
from container_apps.tests.support.faults import FaultyRegistry
from container_apps.tests.support.parts import unavailable, used
from container_apps.tests.support.provider_rig import NOW, Rig, assert_clean, make_rig
from container_apps.tests.support.servers import ServerProcess, start_redis, stop_process

DOWN = RegistryUnavailable("connection refused")


def _down_for(attempts: int) -> dict[str, list[Any]]:
    """Faults for ``attempts`` failed commit attempts (each: hset, then the one re-read)."""
    return {"hset": [DOWN] * attempts, "hget": [DOWN] * attempts}


def _rig(tmp_path: Path, attempts_down: int, **cfg: Any) -> tuple[Rig, FakeClock]:
    clock = FakeClock(100.0)
    registry = FaultyRegistry(MemoryRegistry(), _down_for(attempts_down))
    return make_rig(tmp_path, registry=registry, monotonic=clock, **cfg), clock


def test_outage_keeps_request_in_progress_and_publishes_when_registry_is_back(
    tmp_path: Path,
) -> None:
    rig, clock = _rig(tmp_path, attempts_down=2, publish_retry_seconds=60)
    rig.request({"archive_paths": ["/app/data/"], "request_id": "r1"})
    first = rig.publisher.publish_pending(NOW)
    assert first is not None and first.status == "in_progress"
    assert rig.response()["status"] == "in_progress" and rig.response()["request_id"] == "r1"
    assert rig.journal == ["stop", "start", "put"]  # the app runs again while we wait
    assert rig.history.entries() == []
    clock.advance(10)
    second = rig.publisher.publish_pending(NOW + 10)
    assert second is not None and second.status == "in_progress"
    clock.advance(10)
    third = rig.publisher.publish_pending(NOW + 20)
    assert third is not None and third.status == "ok"
    assert rig.journal == ["stop", "start", "put"]  # captured and uploaded once
    assert rig.response()["status"] == "ok" and rig.record()["cid"] == third.cid
    [entry] = rig.history.entries()
    assert entry.data["cid"] == third.cid and entry.data["durations"]["publish"] == 20
    rig.registry.assert_all_faults_fired()
    assert_clean(rig)


def test_new_request_waits_while_a_publish_is_retrying(tmp_path: Path) -> None:
    rig, clock = _rig(tmp_path, attempts_down=1, publish_retry_seconds=60)
    rig.request({"archive_paths": ["/app/data"], "request_id": "first"})
    assert rig.publisher.publish_pending(NOW).status == "in_progress"  # type: ignore[union-attr]
    rig.request({"archive_paths": ["/app/data"], "request_id": "second"})
    clock.advance(5)
    done = rig.publisher.publish_pending(NOW + 5)
    assert done is not None and done.status == "ok" and done.response["request_id"] == "first"
    assert (rig.control_dir / C.REQUEST_FILE).exists()  # the next one is claimed next tick
    later = rig.publisher.publish_pending(NOW + 10)
    assert later is not None and later.response["request_id"] == "second"


def test_publish_fails_at_chainstore_publish_once_the_retry_time_is_over(tmp_path: Path) -> None:
    rig, clock = _rig(tmp_path, attempts_down=3, publish_retry_seconds=60)
    rig.request({"archive_paths": ["/app/data"], "request_id": "r1"})
    assert rig.publisher.publish_pending(NOW).status == "in_progress"  # type: ignore[union-attr]
    assert len(rig.store.inner.cids()) == 1
    clock.advance(59.9)
    assert rig.publisher.publish_pending(NOW + 60).status == "in_progress"  # type: ignore[union-attr]
    clock.advance(0.1)
    failed = rig.publisher.publish_pending(NOW + 61)
    assert failed is not None and failed.status == "error"
    assert failed.stage == C.STAGE_CHAINSTORE_PUBLISH
    response = rig.response()
    assert response["status"] == "error" and response["stage"] == C.STAGE_CHAINSTORE_PUBLISH
    assert response["request_id"] == "r1"
    assert rig.store.inner.cids() == set()  # the unpublished blob is deleted, as before
    assert rig.history.entries() == []
    rig.registry.assert_all_faults_fired()
    assert_clean(rig)


def test_a_late_tick_still_makes_one_more_attempt(tmp_path: Path) -> None:
    # POLL_INTERVAL may be longer than the retry time: the first tick after the deadline
    # still tries once before failing.
    rig, clock = _rig(tmp_path, attempts_down=1, publish_retry_seconds=5)
    rig.request({"archive_paths": ["/app/data"]})
    assert rig.publisher.publish_pending(NOW).status == "in_progress"  # type: ignore[union-attr]
    clock.advance(120)
    outcome = rig.publisher.publish_pending(NOW + 120)
    assert outcome is not None and outcome.status == "ok"


def test_zero_retry_seconds_fails_at_the_first_attempt(tmp_path: Path) -> None:
    rig, _ = _rig(tmp_path, attempts_down=1, publish_retry_seconds=0)
    rig.request({"archive_paths": ["/app/data"]})
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.stage == C.STAGE_CHAINSTORE_PUBLISH
    assert rig.store.inner.cids() == set()


@pytest.mark.parametrize("registry_back", [True, False])
def test_shutdown_ends_a_retrying_publish_with_one_last_attempt(
    tmp_path: Path, registry_back: bool
) -> None:
    rig, _ = _rig(tmp_path, attempts_down=1 if registry_back else 2, publish_retry_seconds=60)
    rig.request({"archive_paths": ["/app/data"]})
    assert rig.publisher.publish_pending(NOW).status == "in_progress"  # type: ignore[union-attr]
    outcome = rig.publisher.shutdown()
    assert outcome is not None
    if registry_back:
        assert outcome.status == "ok" and rig.record()["cid"] == outcome.cid
    else:
        assert outcome.stage == C.STAGE_CHAINSTORE_PUBLISH
        assert rig.store.inner.cids() == set()
    assert rig.response()["status"] == outcome.status
    assert rig.publisher.shutdown() is None  # nothing left
    assert_clean(rig)


def test_record_is_the_one_built_at_capture_time(tmp_path: Path) -> None:
    rig, clock = _rig(tmp_path, attempts_down=1, publish_retry_seconds=60)
    rig.request({"archive_paths": ["/app/data"]})
    rig.publisher.publish_pending(NOW)
    clock.advance(30)
    outcome = rig.publisher.publish_pending(NOW + 30)
    assert outcome is not None and outcome.status == "ok"
    record = rig.record()
    assert record["version"] == int(NOW) and record["timestamp"] == NOW
    assert json.loads(json.dumps(outcome.response))["published_timestamp"] == NOW


# --- a real Redis that goes away and comes back ----------


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[list[ServerProcess]]:
    """A redis-server of this test alone (the session one must not be stopped)."""
    try:
        servers = [start_redis(tmp_path / "redis")]
    except (OSError, RuntimeError, TimeoutError) as exc:
        unavailable("redis", str(exc))
    used("redis")
    try:
        yield servers
    finally:
        for server in servers:
            stop_process(server)


def _redis_rig(tmp_path: Path, server: ServerProcess, **cfg: Any) -> Rig:
    registry = open_registry(f"redis://127.0.0.1:{server.ports['redis']}/0")
    return make_rig(tmp_path, registry=FaultyRegistry(registry), **cfg)


def test_publish_survives_a_real_redis_restart(
    tmp_path: Path, own_redis: list[ServerProcess]
) -> None:
    [server] = own_redis
    rig = _redis_rig(tmp_path, server, publish_retry_seconds=120)
    stop_process(server)  # the registry goes down after the request was written
    rig.request({"archive_paths": ["/app/data"], "request_id": "blip"})
    started = time.monotonic()
    first = rig.publisher.publish_pending(NOW)
    assert first is not None and first.status == "in_progress"
    assert time.monotonic() - started < 15  # one attempt, not the whole window
    assert rig.response() == {
        "status": "in_progress",
        "archive_paths": ["/app/data"],
        "request_id": "blip",
    }
    assert first.cid in rig.store.inner.cids()  # uploaded, kept while waiting
    own_redis.append(start_redis(tmp_path / "redis", port=server.ports["redis"]))
    done = rig.publisher.publish_pending(NOW + 10)
    assert done is not None and done.status == "ok", rig.response()
    assert rig.response()["status"] == "ok" and rig.response()["request_id"] == "blip"
    assert parse_record(rig.registry.inner.hget(C.CHAINSTORE_HKEY, "key-1")).cid == first.cid
    assert [e.cid for e in rig.history.entries()] == [first.cid]
    assert_clean(rig)


def test_publish_fails_when_a_real_redis_stays_down_past_the_window(
    tmp_path: Path, own_redis: list[ServerProcess]
) -> None:
    [server] = own_redis
    clock = FakeClock(100.0)
    rig = _redis_rig(tmp_path, server, publish_retry_seconds=30, monotonic=clock)
    stop_process(server)
    rig.request({"archive_paths": ["/app/data"], "request_id": "gone"})
    first = rig.publisher.publish_pending(NOW)
    assert first is not None and first.status == "in_progress"
    clock.advance(30)
    failed = rig.publisher.publish_pending(NOW + 30)
    assert failed is not None and failed.stage == C.STAGE_CHAINSTORE_PUBLISH
    assert rig.response()["stage"] == C.STAGE_CHAINSTORE_PUBLISH
    assert rig.store.inner.cids() == set() and rig.history.entries() == []
    assert_clean(rig)
