"""`car sync status|history --json` on a data dir after a real publish and apply.

README "Inspecting" (the status and history documents, exit 2 for an unknown instance) and
docs/FORMAT.md "Sent history entry" (the fields of sent and received entries). The runners
are stopped before the CLI runs: it reads files only, so an operator can inspect a stopped
instance.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from container_apps.tests.integration.conftest import (
    Runners,
    app_sh,
    assert_nothing_left,
    base_config,
    car,
    request_json,
    unique,
    wait_applied,
    wait_response,
    write_payload_sh,
    write_request_sh,
)
from container_apps.tests.support.spec_fields import RECEIVED_HISTORY_FIELDS, SENT_HISTORY_FIELDS

pytestmark = [pytest.mark.docker, pytest.mark.loopdev, pytest.mark.slow]

STATUS_KEYS = {
    "instance_id",
    "role",
    "key",
    "last_published",
    "last_applied",
    "apply_state",
    "quarantine",
    "halt",
}
NULL_DELETION = {"deleted_at": None, "deletion_succeeded": None, "deletion_error": None}


def car_json(*args: str, data_dir: Any, code: int = 0) -> Any:
    result = car(*args, "--json", data_dir=data_dir)
    assert result.returncode == code, result.stderr
    return json.loads(result.stdout)


def test_sync_status_and_history_json_after_publish_and_apply(
    runners: Runners, docker_client: Any
) -> None:
    key = unique("cli")
    data = runners.data_dir()
    provider = runners.start(base_config(unique("prov"), "provider", key))
    consumer = runners.start(base_config(unique("cons"), "consumer", key))
    app_sh(docker_client, provider, write_payload_sh("cli"))
    body = request_json(request_id="cli-1", metadata={"epoch": 7})
    app_sh(docker_client, provider, write_request_sh(body))
    response = wait_response(provider)
    wait_applied(docker_client, consumer, response["cid"])
    runners.stop_all()
    assert_nothing_left(docker_client, data)
    cid, version = response["cid"], response["version"]

    # Both runners are stopped now: status says so with exit 4 (README "Health and status").
    statuses = {s["instance_id"]: s for s in car_json("sync", "status", data_dir=data, code=4)}
    assert set(statuses) == {provider.instance_id, consumer.instance_id}
    for st in statuses.values():
        assert set(st) >= STATUS_KEYS
        assert st["key"] == key and st["quarantine"] == [] and st["halt"] is None
    prov, cons = statuses[provider.instance_id], statuses[consumer.instance_id]
    assert prov["role"] == "provider" and cons["role"] == "consumer"
    assert prov["last_published"] == {
        "cid": cid,
        "version": version,
        "timestamp": response["published_timestamp"],
    }
    assert prov["last_applied"] is None and cons["last_published"] is None
    assert cons["last_applied"]["cid"] == cid and cons["last_applied"]["version"] == version
    assert isinstance(cons["last_applied"]["timestamp"], float)
    assert cons["apply_state"] == "applied"
    assert car_json("sync", "status", consumer.instance_id, data_dir=data, code=4) == [cons]

    assert cons["runner"]["alive"] is False and prov["runner"]["alive"] is False
    rows = car_json("sync", "history", data_dir=data)
    assert [(r["instance_id"], r["direction"]) for r in rows] == [
        (provider.instance_id, "sent"),
        (consumer.instance_id, "received"),
    ]
    sent, received = rows
    assert set(sent) == SENT_HISTORY_FIELDS | {"instance_id", "direction"}
    assert set(received) == RECEIVED_HISTORY_FIELDS | {"instance_id", "direction"}
    assert sent["cid"] == received["cid"] == cid
    assert sent["chainstore_ack"] is True and sent["deletion"] == NULL_DELETION
    assert sent["request"]["request_id"] == "cli-1"
    assert set(sent["durations"]) == {"archive", "upload", "publish"}
    assert set(received["durations"]) == {"download", "prepare", "commit"}
    assert received["metadata"] == {"epoch": 7} and received["deletion"] == NULL_DELETION
    assert received["node_id"] == sent["node_id"] == provider.config["NODE_ID"]
    assert received["manifest"] == sent["manifest"]
    assert sent["manifest"]["archive_paths"] == ["/app/data"]  # normalised
    assert car_json("sync", "history", "--sent", data_dir=data) == [sent]
    assert car_json("sync", "history", consumer.instance_id, "--received", data_dir=data) == [
        received
    ]

    for command in (("sync", "status", "nosuch"), ("sync", "history", "nosuch")):
        result = car(*command, data_dir=data)
        assert result.returncode == 2
        assert "unknown instance 'nosuch'" in result.stderr
