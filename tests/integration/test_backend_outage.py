"""`car run` started on a garbage registry.sqlite: logged once, held, then synced once repaired.

Issue 9 item 4, end to end: a provider and a consumer share a data dir whose embedded
registry is not a database when they start. The runners start their apps anyway and name
the broken file once; the app's request is answered ``in_progress``; once the file is
replaced by a good registry (no restart), the provider answers ``ok`` and the consumer
applies the snapshot.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from container_apps.layout import DataDir
from container_apps.registries.sqlite import SqliteRegistry
from container_apps.tests.integration.conftest import (
    DIGEST_SH,
    Runners,
    app_sh,
    assert_nothing_left,
    base_config,
    read_json,
    request_json,
    unique,
    wait_applied,
    wait_response,
    wait_until,
    write_payload_sh,
    write_request_sh,
)

pytestmark = [pytest.mark.docker, pytest.mark.loopdev, pytest.mark.slow]


def _swap_in_a_good_registry(path: Path, scratch: Path) -> None:
    """Build a good (empty) registry beside the broken one and rename it over it."""
    good = scratch / "good.sqlite"
    SqliteRegistry.from_url(f"sqlite://{good}").check()
    fresh = path.with_name("registry.sqlite.new")
    with (
        contextlib.closing(sqlite3.connect(good)) as src,
        contextlib.closing(sqlite3.connect(fresh)) as dst,
    ):
        src.backup(dst)
    os.replace(fresh, path)


def test_runners_started_on_a_garbage_registry_sync_once_it_is_repaired(
    runners: Runners, docker_client: Any, tmp_path: Path
) -> None:
    key = unique("garbage")
    data = runners.data_dir()
    registry = DataDir(data).shared_registry
    registry.parent.mkdir(parents=True, exist_ok=True)
    registry.write_bytes(b"definitely not an sqlite database\n" * 100)
    provider = runners.start(base_config(unique("prov"), "provider", key))
    consumer = runners.start(base_config(unique("cons"), "consumer", key))

    app_sh(docker_client, provider, write_payload_sh("after-repair"))
    app_sh(docker_client, provider, write_request_sh(request_json(request_id="g-1")))
    held = wait_until(
        "in_progress answer",
        lambda: (lambda r: r if isinstance(r, dict) and r.get("status") else None)(
            read_json(provider.sync_dir / "response.json")
        ),
        watch=[provider],
    )
    assert held["status"] == "in_progress" and held["request_id"] == "g-1"

    _swap_in_a_good_registry(registry, tmp_path)
    answer = wait_response(provider)
    assert answer["request_id"] == "g-1"
    wait_applied(docker_client, consumer, answer["cid"])
    digest = app_sh(docker_client, provider, DIGEST_SH).strip()
    assert app_sh(docker_client, consumer, DIGEST_SH).strip() == digest

    for runner in (provider, consumer):
        log = runner.log()
        assert "volume-sync is off" not in log
        down = [line for line in log.splitlines() if "unavailable" in line]
        assert len(down) == 1 and "not a database" in down[0], down
        assert log.count("reachable again") == 1
    runners.stop_all()
    assert_nothing_left(docker_client, data)
