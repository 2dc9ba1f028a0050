"""A real runner with METRICS_ADDR and NOTIFY: scraped over HTTP, alerts off its loop.

README, "Metrics and alerts": the provider runner publishes through real Docker, S3 and
Redis; its metrics are scraped on 127.0.0.1 and its alerts go to a webhook that hangs
30 s, which must not slow the runner's loop; after ``stop`` nothing listens any more.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.error import URLError

import pytest
from container_apps.container_app_runner import ContainerAppRunnerPlugin
from container_apps.sync import constants as C
from container_apps.tests.runner.conftest import MakeRunner
from container_apps.tests.support.webhook_server import sample, scrape, webhook_server

pytestmark = [pytest.mark.docker, pytest.mark.loopdev, pytest.mark.redis, pytest.mark.s3]


def test_a_runner_serves_metrics_and_a_hanging_webhook_does_not_slow_its_loop(
    make_runner: MakeRunner, s3_store_url: str, redis_registry_url: str
) -> None:
    with webhook_server(hang=30) as hook:
        runner = make_runner(
            INSTANCE_ID="prov1",
            VOLUMES={"data": "/app/data"},
            SYNC={"ENABLED": True, "KEY": "metrics-key", "TYPE": "provider", "POLL_INTERVAL": 1},
            STORAGE={"BLOBS": s3_store_url, "REGISTRY": redis_registry_url},
            METRICS_ADDR="127.0.0.1:0",
            NOTIFY={"URLS": [hook.url()], "ON_SUCCESS": True, "TIMEOUT": 30},
        )
        runner.start()
        assert runner.ops.server is not None
        url = runner.ops.server.url
        volume = next(b.host_root for b in runner.bindings if b.container_path == "/app/data")
        (volume / "hello.txt").write_text("hello")
        control = runner.paths.volume_sync_dir
        answers = []
        for body in ('{"archive_paths": ["/nowhere"]}', '{"archive_paths": ["/app/data"]}'):
            (control / C.REQUEST_FILE).write_text(body)
            answers.append(_run_until_answered(runner, control / C.RESPONSE_FILE))
        assert [a["status"] for a in answers] == ["error", "ok"], answers
        got = scrape(url)
        labels = {"instance": "prov1", "key": "metrics-key"}
        assert sample(got, "car_publishes_total", outcome="ok", stage="", **labels) == 1
        assert (
            sample(got, "car_publishes_total", outcome="error", stage="validation", **labels) == 1
        )
        assert sample(got, "car_downtime_seconds_count", role="provider", **labels) == 1
        assert hook.received == []  # still hanging on the first alert
        runner.stop()
    with pytest.raises(URLError):
        scrape(url)


def _run_until_answered(runner: ContainerAppRunnerPlugin, response: Path) -> dict[str, object]:
    """Run loop iterations until ``response`` says ok or error; each must be quick."""
    response.unlink(missing_ok=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        started = time.monotonic()
        runner.run_once(runner.clock())
        assert time.monotonic() - started < 10, "a loop iteration waited for the webhook"
        if response.exists():
            answer: dict[str, object] = json.loads(response.read_text())
            if answer.get("status") in ("ok", "error"):
                return answer
        time.sleep(0.2)
    raise AssertionError("no answer to the request")
