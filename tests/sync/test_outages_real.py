"""Backend outages on real servers: one log line when a backend goes down, one when back.

README, "Backends" (outages are logged once per state change): a redis-server or S3 server that
the test stops while a sync manager ticks must produce exactly one WARNING for the
outage and one "reachable again" line for the recovery, however many ticks pass; the
retry wrapper's per-attempt lines are DEBUG.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from container_apps.tests.support.fixtures_servers import S3_ACCESS_KEY, S3_SECRET_KEY, S3Server
from container_apps.tests.support.outage_helpers import (
    Ticker,
    build,
    lines_with,
    make_site,
    mount_of,
    request,
    response,
    warnings,
)
from container_apps.tests.support.parts import unavailable, used
from container_apps.tests.support.servers import (
    ServerProcess,
    running,
    start_redis,
    start_weed,
    stop_process,
)

pytestmark = [pytest.mark.redis]


def _redis(workdir: Path, port: int | None = None) -> ServerProcess:
    try:
        return start_redis(workdir, port)
    except (OSError, RuntimeError, TimeoutError) as exc:
        unavailable("redis", str(exc))


def test_redis_stopped_while_a_consumer_ticks_logs_one_line_down_and_one_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = _redis(tmp_path / "redis")
    port = server.ports["redis"]
    url = f"redis://127.0.0.1:{port}/0?namespace=outage"
    used("redis")
    site = make_site(tmp_path / "data", blobs=None, registry=url)
    ticker = Ticker(build("consumer", site))
    with running(server):
        ticker.manager.start()
        ticker.tick(2)
    assert warnings(caplog) == []
    stop_process(server)
    ticker.tick(4)
    down = warnings(caplog)
    assert len(down) == 1, down
    assert f"127.0.0.1:{port}" in down[0] and "unavailable" in down[0]
    retries = lines_with(caplog, "retrying in")
    assert retries, "the retry wrapper still retries, at DEBUG"
    assert all(
        r.levelno == logging.DEBUG for r in caplog.records if "retrying in" in r.getMessage()
    )
    with running(_redis(tmp_path / "redis2", port)):
        ticker.tick(3)
    assert len(warnings(caplog)) == 1
    assert len(lines_with(caplog, "reachable again")) == 1


def _weed(workdir: Path, ports: dict[str, int] | None = None) -> ServerProcess:
    try:
        return start_weed(workdir, S3_ACCESS_KEY, S3_SECRET_KEY, ports=ports)
    except (OSError, RuntimeError, TimeoutError) as exc:
        unavailable("s3", str(exc))


@pytest.mark.s3
def test_s3_stopped_while_a_consumer_ticks_logs_one_line_down_and_one_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY)
    caplog.set_level(logging.DEBUG)
    server = _weed(tmp_path / "weed")
    ports = dict(server.ports)
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    used("s3")
    blobs = S3Server(endpoint, S3_ACCESS_KEY, S3_SECRET_KEY).store_url("outage", "car")
    registry = f"sqlite://{tmp_path / 'shared' / 'registry.sqlite'}"
    provider_site = make_site(tmp_path / "p", blobs=blobs, registry=registry)
    consumer_site = make_site(tmp_path / "c", blobs=blobs, registry=registry)
    (mount_of(provider_site) / "payload.txt").write_text("snapshot 1")
    with running(server):
        S3Server(endpoint, S3_ACCESS_KEY, S3_SECRET_KEY).client().create_bucket(Bucket="outage")
        provider = Ticker(build("provider", provider_site))
        consumer = Ticker(build("consumer", consumer_site))
        provider.manager.start()
        consumer.manager.start()
        request(provider_site, '{"archive_paths": ["/app/data"]}')
        provider.tick()
        assert (response(provider_site) or {}).get("status") == "ok", response(provider_site)
    assert warnings(caplog) == []
    consumer.tick(4)  # the record is due, the S3 server is gone
    down = warnings(caplog)
    assert len(down) == 1, down
    assert endpoint in down[0] and "unavailable" in down[0]
    assert not (mount_of(consumer_site) / "payload.txt").exists()
    with running(_weed(tmp_path / "weed", ports)):
        consumer.tick(3)
    assert (mount_of(consumer_site) / "payload.txt").read_text() == "snapshot 1"
    assert len(warnings(caplog)) == 1, warnings(caplog)
    assert len(lines_with(caplog, "reachable again")) == 1
