"""Host-side operations against real runners (README, "Snapshots, restore and host-side
publish"): `car sync publish`, `SYNC.SCHEDULE`, `car sync snapshots`, `car sync restore`
and `car sync unpin`, on `car run` processes with real Docker and loop volumes; the
restore flow runs on S3 + Redis with one data dir per runner, so only the servers
connect them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from container_apps.tests.integration.conftest import (
    DATA_MOUNT,
    Runners,
    app_sh,
    assert_nothing_left,
    base_config,
    car,
    history,
    hold_for,
    read_json,
    request_json,
    unique,
    wait_applied,
    wait_until,
    write_payload_sh,
    write_request_sh,
)
from container_apps.tests.support.parts import used

pytestmark = [pytest.mark.docker, pytest.mark.loopdev, pytest.mark.slow]

# Changes its data every second, so every scheduled snapshot has its own CID.
TICKING_APP = (
    "trap 'exit 0' TERM INT; "
    f"while true; do date +%s%N > {DATA_MOUNT}/tick.txt; sleep 1 & wait $!; done"
)


def car_publish(instance: str, *args: str, data_dir: Any) -> Any:
    return car("sync", "publish", instance, *args, "--timeout", "90", data_dir=data_dir)


def payload(docker_client: Any, runner: Any) -> str:
    return app_sh(docker_client, runner, f"cat {DATA_MOUNT}/payload.txt").strip()


def test_car_sync_publish_snapshots_the_running_provider_and_answers_by_exit_code(
    runners: Runners, docker_client: Any
) -> None:
    key = unique("hostpub")
    data = runners.data_dir()
    provider = runners.start(base_config(unique("prov"), "provider", key))
    consumer = runners.start(base_config(unique("cons"), "consumer", key))
    app_sh(docker_client, provider, write_payload_sh("host"))

    result = car_publish(provider.instance_id, data_dir=data)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["status"] == "ok" and answer["request_id"].startswith("host-")
    assert answer["archive_paths"] == [DATA_MOUNT]  # the provider's default paths
    wait_applied(docker_client, consumer, answer["cid"])
    assert payload(docker_client, consumer) == "payload host"
    sent = history(provider.paths.history_sent)
    assert [e["request"]["request_id"] for e in sent] == [answer["request_id"]]
    assert not (provider.sync_dir / "response.json").exists()  # the app's dir is untouched

    refused = car_publish(provider.instance_id, "--path", "/nowhere", data_dir=data)
    assert refused.returncode == 3, refused.stderr
    failed = json.loads(refused.stdout)
    assert failed["status"] == "error" and failed["stage"] == "validation"
    assert failed["archive_paths"] == ["/nowhere"]

    wrong_role = car_publish(consumer.instance_id, data_dir=data)
    assert wrong_role.returncode == 2
    assert "is a consumer; this command needs a provider" in wrong_role.stderr

    runners.stop_all()
    stopped = car_publish(provider.instance_id, data_dir=data)
    assert stopped.returncode == 4
    assert "no runner is alive" in stopped.stderr
    assert_nothing_left(docker_client, data)


def test_schedule_makes_snapshots_and_snapshots_lists_the_kept_ones(
    runners: Runners, docker_client: Any
) -> None:
    key = unique("sched")
    data = runners.data_dir()
    config = base_config(unique("prov"), "provider", key, app=TICKING_APP)
    config["SYNC"].update(SCHEDULE=2, KEEP_SNAPSHOTS=3)
    provider = runners.start(config)

    def scheduled() -> list[dict[str, Any]] | None:
        entries = [
            e
            for e in history(provider.paths.history_sent)
            if str(e["request"]["request_id"]).startswith("schedule-")
        ]
        return entries if len(entries) >= 5 else None

    entries = wait_until("5 scheduled snapshots", scheduled, timeout=90, watch=[provider])
    runners.stop_all()
    sent = history(provider.paths.history_sent)
    kept = [e["cid"] for e in reversed(sent) if e["deletion"]["deleted_at"] is None]
    assert len(kept) == 3 and len(entries) >= 5
    assert all(e["manifest"]["archive_paths"] == [DATA_MOUNT] for e in entries)

    listed = car("sync", "snapshots", key, "--json", data_dir=data)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [r["cid"] for r in rows] == kept  # newest first
    newest = sent[-1]
    assert rows[0]["version"] == newest["version"]
    assert rows[0]["node_id"] == config["NODE_ID"] and rows[0]["format"] == "chunked"
    assert rows[0]["size"] == newest["archive_size_bytes"]
    assert rows[0]["time_utc"].endswith("Z")
    assert set(rows[0]["record"]) >= {"cid", "version", "manifest", "node_id", "timestamp"}

    table = car("sync", "snapshots", key, data_dir=data)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split("\t") == ["cid", "version", "time_utc", "node", "size", "format"]
    assert [line.split("\t")[0] for line in lines[1:]] == kept
    assert_nothing_left(docker_client, data)


@pytest.mark.s3
@pytest.mark.redis
def test_restore_pins_a_consumer_to_an_older_snapshot_until_unpin(
    runners: Runners, docker_client: Any, s3_store_url: str, redis_registry_url: str
) -> None:
    used("s3")
    used("redis")
    key = unique("restore")
    storage = {"BLOBS": s3_store_url, "REGISTRY": redis_registry_url}
    prov_data, cons_data = runners.data_dir("prov"), runners.data_dir("cons")
    config = base_config(unique("prov"), "provider", key, storage=storage)
    config["SYNC"]["KEEP_SNAPSHOTS"] = 3
    provider = runners.start(config, prov_data)
    consumer = runners.start(
        base_config(unique("cons"), "consumer", key, storage=storage), cons_data
    )

    cids: list[str] = []
    for tag in ("one", "two", "three"):
        app_sh(docker_client, provider, write_payload_sh(tag))
        result = car_publish(provider.instance_id, data_dir=prov_data)
        assert result.returncode == 0, result.stderr
        cids.append(json.loads(result.stdout)["cid"])
    wait_applied(docker_client, consumer, cids[-1])

    listed = car("sync", "snapshots", key, "--registry", redis_registry_url, "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r["cid"] for r in json.loads(listed.stdout)] == cids[::-1]

    unknown = car(
        "sync", "restore", consumer.instance_id, "--cid", "bafkreinosuch", data_dir=cons_data
    )
    assert unknown.returncode == 3
    assert "bafkreinosuch is not a kept snapshot" in unknown.stderr
    assert not (consumer.paths.sync_state / "pin.json").exists()

    restored = car("sync", "restore", consumer.instance_id, "--cid", cids[1], data_dir=cons_data)
    assert restored.returncode == 0, restored.stderr
    wait_applied(docker_client, consumer, cids[1])
    assert payload(docker_client, consumer) == "payload two"
    status = json.loads(
        car("sync", "status", consumer.instance_id, "--json", data_dir=cons_data).stdout
    )
    assert status[0]["pinned"] == cids[1]

    app_sh(docker_client, provider, write_payload_sh("four"))
    result = car_publish(provider.instance_id, data_dir=prov_data)
    assert result.returncode == 0, result.stderr
    fourth = json.loads(result.stdout)["cid"]
    last_apply = consumer.sync_dir / "last_apply.json"
    hold_for(
        "the pinned consumer to stay on its snapshot",
        lambda: (read_json(last_apply) or {}).get("cid") == cids[1],
        4,
        watch=[consumer],
    )
    assert consumer.all_logs().count(f"volume-sync pinned to {cids[1]}") == 1

    retired = car("sync", "restore", consumer.instance_id, "--cid", cids[0], data_dir=cons_data)
    assert retired.returncode == 3  # KEEP_SNAPSHOTS 3: the first one was retired
    assert (read_json(consumer.paths.sync_state / "pin.json") or {}).get("cid") == cids[1]

    unpinned = car("sync", "unpin", consumer.instance_id, data_dir=cons_data)
    assert unpinned.returncode == 0, unpinned.stderr
    wait_applied(docker_client, consumer, fourth)
    assert payload(docker_client, consumer) == "payload four"
    status = json.loads(
        car("sync", "status", consumer.instance_id, "--json", data_dir=cons_data).stdout
    )
    assert status[0]["pinned"] is None
    runners.stop_all()
    assert_nothing_left(docker_client, prov_data, cons_data)


def test_a_request_written_while_sync_is_off_is_answered_with_why(
    runners: Runners, docker_client: Any
) -> None:
    data = runners.data_dir()
    runner = runners.start(base_config(unique("nosync"), None, None))
    app_sh(docker_client, runner, write_request_sh(request_json(request_id="r-off")))

    def answered() -> dict[str, Any] | None:
        body = read_json(runner.sync_dir / "response.json")
        return body if isinstance(body, dict) else None

    answer = wait_until("the answer while sync is off", answered, watch=[runner])
    assert answer["status"] == "error" and answer["request_id"] == "r-off"
    assert answer["error"] == "volume-sync is disabled on this runner: SYNC.ENABLED is false"
    runners.stop_all()
    assert runner.all_logs().count("volume-sync request answered with an error") == 1
    assert_nothing_left(docker_client, data)
