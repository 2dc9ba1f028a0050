"""A provider runner SIGKILLed between claim and publish recovers and publishes once.

An orphan ``.processing`` is renamed back and the publish is redone (docs/FORMAT.md,
"request.json"); the registry ack is the commit point (README, "Provider"); a new ``car
run`` sweeps the crashed run's container, mounts and loop devices.

The pause needs no product hook: the test puts a trigger on the embedded SQLite
registry that refuses every write of a record (``CHAINSTORE_SYNC``) while leases
(``CHAINSTORE_LEASES``) still go through, so the provider's ``hset`` fails after the
upload and the publish waits in its retry window (README, "Provider"). The runner is
killed there, with the request claimed, the blob uploaded and nothing published.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest
from container_apps.layout import DataDir
from container_apps.tests.integration.conftest import (
    DIGEST_SH,
    Runners,
    app_sh,
    assert_nothing_left,
    base_config,
    history,
    hold_for,
    read_json,
    request_json,
    running_container,
    unique,
    wait_response,
    wait_until,
    write_payload_sh,
    write_request_sh,
)

pytestmark = [pytest.mark.docker, pytest.mark.loopdev, pytest.mark.slow]

RECORD_SQL = "SELECT value FROM registry WHERE hkey = 'CHAINSTORE_SYNC' AND key = ?"


@pytest.mark.parametrize(("archive_format", "blobs_uploaded"), [("tar.zst", 1), ("chunked", 2)])
def test_provider_killed_between_claim_and_publish_publishes_exactly_once_on_restart(
    runners: Runners, docker_client: Any, archive_format: str, blobs_uploaded: int
) -> None:
    key = unique("crash")
    data = runners.data_dir()
    shared = DataDir(data)
    config = base_config(unique("prov"), "provider", key)
    config["SYNC"]["ARCHIVE_FORMAT"] = archive_format
    provider = runners.start(config)
    app_sh(docker_client, provider, write_payload_sh("crash"))
    digest = app_sh(docker_client, provider, DIGEST_SH).strip()
    wait_until("the sqlite registry", shared.shared_registry.exists, watch=[provider])

    lock = sqlite3.connect(shared.shared_registry, isolation_level=None, timeout=10)
    try:
        for event in ("INSERT", "UPDATE"):  # records refused; the lease is still taken
            lock.execute(
                f"CREATE TRIGGER block_records_{event.lower()} BEFORE {event} ON registry "
                "WHEN NEW.hkey = 'CHAINSTORE_SYNC' BEGIN SELECT RAISE(ABORT, 'held by test'); END"
            )
        app_sh(docker_client, provider, write_request_sh(request_json(request_id="once")))

        def uploaded_not_published() -> bool:
            response = read_json(provider.sync_dir / "response.json") or {}
            blobs = list(shared.shared_blobs.glob("bafkrei*"))
            # tar: the archive; chunked: its one pack, then its index
            return response.get("status") == "in_progress" and len(blobs) == blobs_uploaded

        wait_until("the upload, with hset refused", uploaded_not_published, watch=[provider])
        provider.kill()
        assert (provider.sync_dir / "request.json.processing").is_file()
        assert not (provider.sync_dir / "request.json").exists()
        assert history(provider.paths.history_sent) == []
        assert lock.execute(RECORD_SQL, (key,)).fetchone() is None
    finally:
        for event in ("insert", "update"):
            lock.execute(f"DROP TRIGGER IF EXISTS block_records_{event}")
        lock.close()
    assert "published snapshot" not in provider.log(1)
    # The crashed run's temp archive (or staging dir) may still be there (a tar archive is
    # removed once uploaded, while the publish waits); the next start removes what is left.
    leftover = [p.name.split("-")[0] for p in provider.paths.output.iterdir()]
    assert leftover in ([], ["snapshot"])
    # The crash left its container running (restarted after the archive) and its volumes.
    assert running_container(docker_client, provider.container) is not None

    provider.start()
    response = wait_response(provider)
    assert response["request_id"] == "once"
    if leftover:
        assert "removing the leftover of an earlier run" in provider.log(2)
    assert list(provider.paths.output.iterdir()) == []
    assert app_sh(docker_client, provider, DIGEST_SH).strip() == digest
    # Several poll intervals later: still one publish, one history entry, one record.
    hold_for(
        "one sent entry",
        lambda: len(history(provider.paths.history_sent)) == 1,
        3.0,
        watch=[provider],
    )
    [sent] = history(provider.paths.history_sent)
    assert sent["cid"] == response["cid"] and sent["request"]["request_id"] == "once"
    with sqlite3.connect(shared.shared_registry) as conn:
        rows = conn.execute("SELECT value FROM registry WHERE hkey = 'CHAINSTORE_SYNC'").fetchall()
    conn.close()
    assert [json.loads(v)["cid"] for (v,) in rows] == [response["cid"]]
    assert provider.all_logs().count("published snapshot") == 1
    names = {p.name for p in provider.sync_dir.iterdir()}
    assert names.isdisjoint({"request.json", "request.json.processing", "request.json.invalid"})
    assert list(provider.paths.output.iterdir()) == []
    if leftover:
        assert "removed stale archive" in provider.log(2)
    runners.stop_all()
    assert_nothing_left(docker_client, data)
