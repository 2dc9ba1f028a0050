"""A consumer whose rollback cannot prove consistency halts until `car sync retry`.

README "Consumer": the container stays stopped across loop iterations and runner restarts, the
reason is in ``car sync status``, and ``car sync retry INSTANCE`` lets it start again.

How the rollback is made to fail, on real ext4 and with no mock: the consumer's volume
already has a directory ``/app/data/locked`` that the snapshot also contains, and the
test makes it immutable (``chattr +i``). The commit records its metadata, then cannot
change it (EPERM); the rollback cannot restore it either, so a marker stays behind and
the volume cannot be proven consistent.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest
from container_apps.sync.status import instance_status
from container_apps.tests.integration.conftest import (
    RunnerProcess,
    Runners,
    app_sh,
    assert_nothing_left,
    base_config,
    car,
    container_starts,
    hold_for,
    request_json,
    running_container,
    unique,
    wait_applied,
    wait_response,
    wait_until,
    write_request_sh,
)

pytestmark = [pytest.mark.docker, pytest.mark.loopdev, pytest.mark.slow]

WRITE_LOCKED_SH = (
    "mkdir -p /app/data/locked && echo 'locked payload' > /app/data/locked/file.txt && "
    "echo 'top' > /app/data/payload.txt"
)


def chattr(flag: str, path: Any) -> None:
    subprocess.run(["chattr", flag, str(path)], check=True, capture_output=True)


def halted(runner: RunnerProcess) -> str | None:
    return instance_status(runner.paths)["halt"]


def stays_down(docker_client: Any, runner: RunnerProcess, seconds: float) -> None:
    """No running app container for ``seconds`` (several loop iterations and polls)."""
    hold_for(
        f"{runner.container} stays stopped",
        lambda: running_container(docker_client, runner.container) is None,
        seconds,
        watch=[runner],
    )


def test_unrecoverable_apply_halts_across_restarts_until_sync_retry(
    runners: Runners, docker_client: Any
) -> None:
    key = unique("halt")
    data = runners.data_dir()
    consumer = runners.start(base_config(unique("cons"), "consumer", key))
    app_sh(docker_client, consumer, "mkdir /app/data/locked")
    locked = consumer.data_mount / "locked"
    chattr("+i", locked)
    try:
        provider = runners.start(base_config(unique("prov"), "provider", key))
        app_sh(docker_client, provider, WRITE_LOCKED_SH)
        app_sh(docker_client, provider, write_request_sh(request_json(request_id="h1")))
        cid = wait_response(provider)["cid"]

        reason = wait_until("the halt", lambda: halted(consumer), watch=[consumer])
        assert "rollback cannot prove the volume consistent" in reason
        stays_down(docker_client, consumer, 4.0)  # 4 polls, ~13 loop iterations
        assert "sync halted, container stays stopped" in consumer.log()

        status = car("sync", "status", consumer.instance_id, "--json", data_dir=data)
        assert status.returncode == 5, status.stderr  # halted (README "Health and status")
        [shown] = json.loads(status.stdout)
        assert shown["halt"] == reason
        assert shown["apply_state"] == "uncertain"
        assert shown["runner"]["alive"] is True and shown["problems"][0]["kind"] == "halted"

        # A runner restart keeps the halt: the journal still cannot be rolled back.
        assert consumer.stop() == 0
        consumer.start()
        wait_until(
            "the restarted runner to hold the start",
            lambda: "not started: sync holds the start" in consumer.log(),
            watch=[consumer],
        )
        stays_down(docker_client, consumer, 3.0)
        assert halted(consumer) is not None
    finally:
        chattr("-i", locked)  # the operator's fix

    retried_at = time.time()
    retry = car("sync", "retry", consumer.instance_id, data_dir=data)
    assert retry.returncode == 0, retry.stderr
    assert "cleared halt (rollback cannot prove" in retry.stdout
    wait_applied(docker_client, consumer, cid)
    # Applied while the app was still down, then started once: no double boot.
    assert len(container_starts(docker_client, consumer.container, retried_at)) == 1
    assert app_sh(docker_client, consumer, "cat /app/data/locked/file.txt") == "locked payload\n"
    assert halted(consumer) is None
    healthy = car("sync", "status", consumer.instance_id, data_dir=data)
    assert healthy.returncode == 0, healthy.stdout  # retried and applied: healthy again
    # No runner backup dir or temp file is left in the app volume.
    assert [p.name for p in consumer.data_mount.iterdir() if p.name.startswith(".car")] == []
    runners.stop_all()
    assert_nothing_left(docker_client, data)
