"""`car sync status` as a health check of real runners on a real Redis registry.

README "Health and status": exit 0 while every runner is alive and healthy, 3 for a
quarantine, 4 once a runner is killed; the registry's record is shown beside the applied
one, and a stopped Redis is a warning reported within the 3 s bound, not a hang.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from container_apps.registries.factory import open_registry
from container_apps.sync import constants as C
from container_apps.tests.integration.conftest import (
    Runners,
    app_sh,
    base_config,
    car,
    request_json,
    unique,
    wait_applied,
    wait_response,
    wait_until,
    write_payload_sh,
    write_request_sh,
)
from container_apps.tests.support.servers import ServerProcess, stop_process

pytestmark = [pytest.mark.docker, pytest.mark.loopdev, pytest.mark.slow, pytest.mark.redis]


def status(instance: str, data: Any, *extra: str) -> tuple[int, Any]:
    result = car("sync", "status", instance, "--json", *extra, data_dir=data)
    assert result.returncode != 2, result.stderr
    [shown] = json.loads(result.stdout)
    return result.returncode, shown


def test_status_follows_real_runners_through_quarantine_outage_and_crash(
    runners: Runners, docker_client: Any, private_redis: ServerProcess
) -> None:
    registry_url = f"redis://127.0.0.1:{private_redis.ports['redis']}/0"
    storage = {"REGISTRY": registry_url}
    key = unique("health")
    data = runners.data_dir()
    provider = runners.start(base_config(unique("prov"), "provider", key, storage=storage))
    consumer = runners.start(base_config(unique("cons"), "consumer", key, storage=storage))
    app_sh(docker_client, provider, write_payload_sh("health"))
    app_sh(docker_client, provider, write_request_sh(request_json(request_id="h-1")))
    response = wait_response(provider)
    wait_applied(docker_client, consumer, response["cid"])

    # Alive and healthy: exit 0, the registry's record is the one applied.
    for runner, local in ((provider, "last_published"), (consumer, "last_applied")):
        code, shown = status(runner.instance_id, data)
        assert code == 0, shown["problems"]
        assert shown["healthy"] is True and shown["runner"]["alive"] is True
        assert shown["runner"]["pid"] == runner.proc.pid  # type: ignore[union-attr]
        now = shown["registry_now"]
        assert now["url"] == registry_url and now["error"] is None
        assert now["record"]["cid"] == response["cid"] == shown[local]["cid"]
        assert now["record"]["node_id"] == provider.config["NODE_ID"]
        assert now["matches_local"] is True
    text = car("sync", "status", consumer.instance_id, data_dir=data).stdout
    assert f"node={provider.config['NODE_ID']}  (= applied)" in text

    # A malformed record in the registry: the consumer quarantines it, exit 3.
    open_registry(registry_url).hset(C.CHAINSTORE_HKEY, key, '{"cid": "bafkreinot", "x": 1}')
    wait_until(
        "the quarantine",
        lambda: status(consumer.instance_id, data)[1]["quarantine"],
        watch=[consumer],
    )
    code, shown = status(consumer.instance_id, data)
    assert code == 3 and [p["kind"] for p in shown["problems"]] == ["quarantined"]
    assert shown["registry_now"]["invalid"] and shown["warnings"]

    # Redis stopped: a warning within the bound, not a hang and not a new problem.
    stop_process(private_redis)
    started = time.monotonic()
    code, shown = status(provider.instance_id, data)
    assert time.monotonic() - started < 10  # interpreter start-up plus the 3 s bound
    assert code == 0
    [warning] = shown["warnings"]
    assert warning.startswith(f"registry unreachable: {registry_url} (")

    # The provider's runner crashes (SIGKILL): its PID stays in runner.lock, exit 4.
    provider.kill()
    code, shown = status(provider.instance_id, data, "--no-registry")
    assert code == 4 and shown["runner"]["alive"] is False
    assert (provider.paths.root / "runner.lock").read_text().strip().isdigit()
    code, _ = status(consumer.instance_id, data, "--no-registry")
    assert code == 3  # the consumer is still alive, still quarantined
