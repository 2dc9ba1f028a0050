"""Metrics and alerts from sync managers on real Redis and S3 (README, "Metrics and alerts").

Provider and consumer are built as ``car run`` builds them (``build_sync_manager``), with
the runner's observers (``OpsServices``): metrics scraped over HTTP on 127.0.0.1, alerts
and heartbeats received by a local HTTP server. Only the containers are faked.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from container_apps.ops.config import NotifyConfig
from container_apps.ops.service import OpsServices
from container_apps.registries.factory import open_registry
from container_apps.sync import constants as C
from container_apps.sync.config import SyncConfig
from container_apps.sync.manager import SyncManager, SyncSite, build_sync_manager
from container_apps.tests.support.fakes import FakeContainers
from container_apps.tests.support.outage_helpers import KEY, make_site, mount_of, request, response
from container_apps.tests.support.parts import unavailable, used
from container_apps.tests.support.servers import running, start_redis, stop_process
from container_apps.tests.support.webhook_server import (
    WebhookServer,
    sample,
    scrape,
    webhook_server,
)

pytestmark = [pytest.mark.redis, pytest.mark.s3]


class Node:
    """One runner's sync manager with its metrics server and notifier."""

    def __init__(self, role: str, site: SyncSite, hook: WebhookServer, **notify: Any) -> None:
        self.site = site
        self.ops = OpsServices.start(
            instance_id=f"{role}-1",
            node_id=f"node-{role}",
            key=KEY,
            metrics_addr="127.0.0.1:0",
            notify=NotifyConfig(URLS=[hook.url(f"/{role}")], **notify),
        )
        raw = {"ENABLED": True, "KEY": KEY, "TYPE": role, "POLL_INTERVAL": 1}
        self.manager: SyncManager = build_sync_manager(
            SyncConfig.parse(raw), site, FakeContainers(), events=self.ops.events
        )
        self.clock = 0.0

    def tick(self, times: int = 1) -> None:
        for _ in range(times):
            self.clock += 1.0
            self.manager.tick(self.clock)

    def scrape(self) -> dict[str, float]:
        assert self.ops.server is not None
        return scrape(self.ops.server.url)


@pytest.fixture
def hook() -> Iterator[WebhookServer]:
    with webhook_server() as server:
        yield server


@pytest.fixture
def sites(tmp_path: Path, s3_store_url: str, redis_registry_url: str) -> tuple[SyncSite, SyncSite]:
    provider = make_site(tmp_path / "p", blobs=s3_store_url, registry=redis_registry_url)
    consumer = make_site(tmp_path / "c", blobs=s3_store_url, registry=redis_registry_url)
    return provider, consumer


def _nodes(sites: tuple[SyncSite, SyncSite], hook: WebhookServer, **notify: Any) -> list[Node]:
    return [Node("provider", sites[0], hook, **notify), Node("consumer", sites[1], hook, **notify)]


def test_a_publish_and_an_apply_move_the_scraped_counters(
    sites: tuple[SyncSite, SyncSite], hook: WebhookServer
) -> None:
    provider, consumer = nodes = _nodes(sites, hook, ON_SUCCESS=True)
    try:
        for node in nodes:
            node.manager.start()
        before = consumer.scrape()
        assert sample(before, "car_applies_total", outcome="ok") is None
        payload = b"x" * 300_000
        (mount_of(provider.site) / "data.bin").write_bytes(payload)
        request(provider.site, '{"archive_paths": ["/app/data"]}')
        provider.tick()
        published = response(provider.site) or {}
        assert published.get("status") == "ok", published
        consumer.tick()
        assert (mount_of(consumer.site) / "data.bin").read_bytes() == payload

        labels = {"instance": "provider-1", "key": KEY}
        got = provider.scrape()
        assert sample(got, "car_publishes_total", outcome="ok", **labels) == 1
        assert sample(got, "car_snapshot_bytes_sent_total", **labels) == float(
            published["archive_size_bytes"]
        )
        assert sample(got, "car_backend_up", backend="registry", **labels) == 1
        assert sample(got, "car_backend_up", backend="blob store", **labels) == 1
        info = [k for k in got if k.startswith("car_snapshot_info{")]
        assert len(info) == 1 and f'cid="{published["cid"]}"' in info[0]

        labels = {"instance": "consumer-1", "key": KEY}
        got = consumer.scrape()
        assert sample(got, "car_applies_total", outcome="ok", **labels) == 1
        assert sample(got, "car_snapshot_bytes_received_total", **labels) == float(
            published["archive_size_bytes"]
        )
        assert sample(got, "car_downtime_seconds_count", role="consumer", **labels) == 1
        assert sample(got, "car_quarantined_snapshots", **labels) == 0
        assert sample(got, "car_halted", **labels) == 0
        last = sample(got, "car_last_success_timestamp_seconds", role="consumer", **labels)
        assert last is not None and abs(last - time.time()) < 60
        info = [k for k in got if k.startswith("car_snapshot_info{")]
        assert f'version="{published["version"]}"' in info[0]
        # ON_SUCCESS: both successes were posted too.
        assert [r.body["event"] for r in hook.wait_for(1, path="/provider")] == ["published"]
        assert [r.body["event"] for r in hook.wait_for(1, path="/consumer")] == ["applied"]
    finally:
        for node in nodes:
            node.ops.close()


def test_a_failed_publish_and_a_quarantine_are_alerted_then_the_recovery(
    sites: tuple[SyncSite, SyncSite], hook: WebhookServer, redis_registry_url: str
) -> None:
    provider, consumer = nodes = _nodes(sites, hook)
    try:
        for node in nodes:
            node.manager.start()
        request(provider.site, '{"archive_paths": ["/etc/passwd"]}')  # outside the volumes
        provider.tick()
        (failed,) = hook.wait_for(1, path="/provider")
        assert failed.body["event"] == "publish_failed"
        assert failed.body["stage"] == C.STAGE_VALIDATION and failed.body["error"]
        request(provider.site, '{"archive_paths": ["/app/data"]}')
        provider.tick()
        events = [r.body["event"] for r in hook.wait_for(2, path="/provider")]
        assert events == ["publish_failed", "recovered"]

        open_registry(redis_registry_url).hset(C.CHAINSTORE_HKEY, KEY, '{"cid": "bafk-broken"')
        consumer.tick()
        (quarantined,) = hook.wait_for(1, path="/consumer")
        body = quarantined.body
        assert body["event"] == "quarantined" and body["instance"] == "consumer-1"
        assert body["node"] == "node-consumer" and "malformed" in body["error"]
        got = consumer.scrape()
        labels = {"instance": "consumer-1", "key": KEY}
        assert sample(got, "car_quarantined_snapshots", **labels) == 1
        assert sample(got, "car_applies_total", outcome="quarantined", **labels) == 1
        assert sample(provider.scrape(), "car_publishes_total", outcome="error") == 1
        consumer.tick(3)  # still quarantined: no second alert
        time.sleep(0.3)
        assert len(hook.wait_for(1, path="/consumer")) == 1
    finally:
        for node in nodes:
            node.ops.close()


def test_the_heartbeat_is_pinged_after_good_ticks_only(
    sites: tuple[SyncSite, SyncSite], hook: WebhookServer
) -> None:
    consumer = Node("consumer", sites[1], hook, HEARTBEAT_URL=hook.url("/beat"))
    try:
        consumer.manager.start()
        consumer.tick()
        (beat,) = hook.wait_for(1, path="/beat")
        assert beat.method == "GET"
        consumer.manager.consumer.state.halt("test halt", now=time.time())  # type: ignore[union-attr]
        time.sleep(0.3)
        consumer.tick(3)
        time.sleep(0.5)
        assert len(hook.wait_for(1, path="/beat")) == 1  # halted: no heartbeat
        (halted,) = hook.wait_for(1, path="/consumer")
        assert halted.body["event"] == "halted" and halted.body["error"] == "test halt"
    finally:
        consumer.ops.close()


def test_registry_reachability_follows_a_real_redis_outage(
    tmp_path: Path, hook: WebhookServer
) -> None:
    try:
        server = start_redis(tmp_path / "redis")
    except (OSError, RuntimeError, TimeoutError) as exc:
        unavailable("redis", str(exc))
    port = server.ports["redis"]
    used("redis")
    registry = f"redis://127.0.0.1:{port}/0?namespace=reach"
    site = make_site(tmp_path / "c", blobs=None, registry=registry)
    consumer = Node("consumer", site, hook, HEARTBEAT_URL=hook.url("/beat"))
    labels = {"instance": "consumer-1", "key": KEY, "backend": "registry"}
    try:
        with running(server):
            consumer.manager.start()
            consumer.tick()
            assert sample(consumer.scrape(), "car_backend_up", **labels) == 1
            beats = len(hook.wait_for(1, path="/beat"))
        stop_process(server)
        consumer.tick(2)
        assert sample(consumer.scrape(), "car_backend_up", **labels) == 0
        time.sleep(0.5)
        assert len(hook.wait_for(1, path="/beat")) == beats  # no heartbeat during the outage
        with running(start_redis(tmp_path / "redis2", port)):
            consumer.tick(2)
            assert sample(consumer.scrape(), "car_backend_up", **labels) == 1
            assert len(hook.wait_for(beats + 1, path="/beat")) > beats
    finally:
        consumer.ops.close()
