"""Alerts and the heartbeat over real HTTP to a local server (README, "Metrics and alerts")."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from container_apps.ops.config import NotifyConfig
from container_apps.ops.notify import Notifier
from container_apps.sync import events as E
from container_apps.sync.events import SyncEvent
from container_apps.tests.support.webhook_server import webhook_server

LOG = logging.getLogger("test.notify")


def _event(event: str = E.EVENT_QUARANTINED, **fields: Any) -> SyncEvent:
    base: dict[str, Any] = {"role": "consumer", "key": "k1", "timestamp": 1_764_601_203.5}
    return SyncEvent(event, **{**base, **fields})


@contextmanager
def _notifier(**keys: Any) -> Iterator[Notifier]:
    notifier = Notifier(NotifyConfig(**keys), instance_id="app1", node_id="node-b", log=LOG)
    try:
        yield notifier
    finally:
        notifier.close()


def test_a_quarantine_is_posted_as_json_with_the_documented_fields() -> None:
    with webhook_server() as hook, _notifier(URLS=[hook.url()]) as notifier:
        notifier.on_event(
            _event(cid="bafkreiabc", version=7, stage="r1fs_download", error="digest mismatch")
        )
        (got,) = hook.wait_for(1)
    assert got.method == "POST" and got.path == "/hook"
    assert got.body == {
        "event": "quarantined",
        "instance": "app1",
        "key": "k1",
        "node": "node-b",
        "role": "consumer",
        "cid": "bafkreiabc",
        "version": 7,
        "stage": "r1fs_download",
        "error": "digest mismatch",
        "timestamp": 1_764_601_203.5,
        "time": "2025-12-01T15:00:03Z",
        "text": "car app1 (consumer, key k1): quarantined bafkreiabc at r1fs_download: "
        "digest mismatch",
    }


def test_successes_are_posted_only_with_on_success() -> None:
    with webhook_server() as hook:
        with _notifier(URLS=[hook.url("/quiet")]) as quiet:
            quiet.on_event(_event(E.EVENT_APPLIED, cid="c1"))
            quiet.on_event(_event(E.EVENT_HALTED, error="rollback unproven"))
        with _notifier(URLS=[hook.url("/loud")], ON_SUCCESS=True) as loud:
            loud.on_event(_event(E.EVENT_PUBLISHED, role="provider", cid="c2"))
        assert [r.body["event"] for r in hook.wait_for(1, path="/quiet")] == ["halted"]
        assert [r.body["event"] for r in hook.wait_for(1, path="/loud")] == ["published"]


def test_a_hanging_webhook_does_not_block_the_caller_and_the_heartbeat_is_a_get(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOG.name)
    with webhook_server(hang=30) as hang, webhook_server() as beat:
        keys = {"URLS": [hang.url()], "HEARTBEAT_URL": beat.url("/ping"), "TIMEOUT": 1}
        with _notifier(**keys) as notifier:
            started = time.monotonic()
            for _ in range(20):
                notifier.on_event(_event(E.EVENT_PUBLISH_FAILED, role="provider"))
                notifier.on_cycle_ok(0.0)
            assert time.monotonic() - started < 0.5  # queued, never sent from the tick
            (ping,) = beat.wait_for(1, timeout=15)
            assert ping.method == "GET" and ping.body is None
            close_started = time.monotonic()
        assert time.monotonic() - close_started < 3  # close abandons the hung call
        logged = len(caplog.records)
        time.sleep(1.5)  # past the hung call's TIMEOUT: a closed notifier logs nothing more
        assert len(caplog.records) == logged, [r.getMessage() for r in caplog.records]


def test_a_failing_endpoint_is_logged_once_down_and_once_back_without_its_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOG.name)
    with webhook_server(status=500) as hook:
        url = hook.url("/services/SECRET?token=abc")
        with _notifier(URLS=[url]) as notifier:
            for _ in range(4):
                notifier.on_event(_event())
            hook.wait_for(4)
            hook.status = 200
            notifier.on_event(_event())
            hook.wait_for(5)
            hook.status = 500
            notifier.on_event(_event())
            hook.wait_for(6)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and len(_lines(caplog, hook.port)) < 3:
                time.sleep(0.05)  # logged by the sender thread
    lines = _lines(caplog, hook.port)
    assert len(lines) == 3, lines
    assert "failed" in lines[0] and "500" in lines[0]
    assert "works again" in lines[1] and "failed" in lines[2]
    assert all("SECRET" not in line and "abc" not in line for line in lines)
    assert f"http://127.0.0.1:{hook.port}/..." in lines[0]


def _lines(caplog: pytest.LogCaptureFixture, port: int) -> list[str]:
    """This test's log lines (another test's abandoned sender may still be winding down)."""
    own = f"127.0.0.1:{port}/"
    return [r.getMessage() for r in caplog.records if own in r.getMessage()]
