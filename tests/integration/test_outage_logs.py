"""A Redis outage seen by two `car run` processes: one line down, one back, each naming its
instance (README, "Logs and output"), in text and in ``--log-format json``.

Both runners use a real redis-server on 127.0.0.1 as registry. After a first snapshot
went through, the server is stopped for many ticks (PROCESS_DELAY 0.3 s, POLL_INTERVAL
1 s) while the provider is asked for a second snapshot; then a server is started again on
the same port. Each runner must log the outage once as a WARNING and its end once,
whatever the number of ticks and retries in between, and every line it prints carries
its instance id.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from container_apps.tests.integration.conftest import (
    Runners,
    app_sh,
    base_config,
    request_json,
    unique,
    wait_applied,
    wait_response,
    wait_until,
    write_payload_sh,
    write_request_sh,
)
from container_apps.tests.support.parts import unavailable, used
from container_apps.tests.support.servers import ServerProcess, start_redis, stop_process

pytestmark = [pytest.mark.docker, pytest.mark.loopdev, pytest.mark.redis, pytest.mark.slow]
OUTAGE_SECONDS = 12


def _redis(workdir: Path, port: int | None = None) -> ServerProcess:
    try:
        return start_redis(workdir, port)
    except (OSError, RuntimeError, TimeoutError) as exc:
        unavailable("redis", str(exc))


def _text_events(log: str) -> list[str]:
    """Log lines of the runner (app output and tracebacks are not prefixed by a time)."""
    return [ln for ln in log.splitlines() if ln[:4].isdigit() and "Z " in ln[:30]]


def _since(lines: list[Any], mark: int) -> list[Any]:
    return lines[mark:]


def test_a_redis_outage_is_one_line_down_and_one_back_per_runner_each_naming_it(
    runners: Runners, docker_client: Any, tmp_path: Path
) -> None:
    server = _redis(tmp_path / "redis")
    port = server.ports["redis"]
    used("redis")
    storage = {"REGISTRY": f"redis://127.0.0.1:{port}/0?namespace={unique('ns')}"}
    key = unique("outage")
    try:
        prov = runners.start(base_config(unique("prov"), "provider", key, storage=storage))
        cons = runners.new(base_config(unique("cons"), "consumer", key, storage=storage))
        cons.cli_args = ["--log-format", "json"]
        cons.start()
        app_sh(docker_client, prov, write_payload_sh("one"))
        app_sh(docker_client, prov, write_request_sh(request_json(request_id="r-1")))
        first = wait_response(prov)
        wait_applied(docker_client, cons, first["cid"])
        prov_mark = len(_text_events(prov.log()))
        cons_mark = len(cons.log().splitlines())

        stop_process(server)
        app_sh(docker_client, prov, write_payload_sh("two"))
        app_sh(docker_client, prov, write_request_sh(request_json(request_id="r-2")))
        time.sleep(OUTAGE_SECONDS)
        prov.check_alive()
        cons.check_alive()
        server = _redis(tmp_path / "redis2", port)
        second = wait_response(prov, not_cid=first["cid"])
        wait_applied(docker_client, cons, second["cid"])
        wait_until(
            "the consumer's recovery line",
            lambda: "reachable again" in cons.log() or None,
            watch=[cons],
        )
    finally:
        stop_process(server)

    prov_lines = _text_events(prov.log())
    assert prov_lines and all(f" [{prov.instance_id}]: " in ln for ln in prov_lines), prov_lines
    prov_outage = _since(prov_lines, prov_mark)
    prov_warnings = [ln for ln in prov_outage if " WARNING " in ln]
    assert len(prov_warnings) == 1, prov_warnings
    assert len([ln for ln in prov_outage if "reachable again" in ln]) == 1, prov_outage

    cons_entries = [json.loads(ln) for ln in cons.log().splitlines()]  # every line is JSON
    assert {e["instance"] for e in cons_entries} == {cons.instance_id}
    cons_outage = _since(cons_entries, cons_mark)
    cons_warnings = [e["message"] for e in cons_outage if e["level"] == "WARNING"]
    assert len(cons_warnings) == 1, cons_warnings
    assert f"127.0.0.1:{port}" in cons_warnings[0]
    assert len([e for e in cons_outage if "reachable again" in e["message"]]) == 1
    runners.stop_all()
