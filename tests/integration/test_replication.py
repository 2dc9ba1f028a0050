"""Provider -> consumers end to end: `car run` processes, real Docker, loop volumes, backends.

SPEC §7.1/§7.5 (publish and apply), §7.9 (retirement), §3.3 (apply before the first
start, no double boot), §9 (embedded file:// + sqlite:// in a shared data dir, and S3 +
Redis with one data dir per runner so that only the servers connect them).
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from container_apps.layout import DataDir
from container_apps.sync.chunks.index_parse import parse_index
from container_apps.tests.integration.conftest import (
    BOOT_REPORT_APP,
    DIGEST_SH,
    Runners,
    app_sh,
    assert_nothing_left,
    base_config,
    container_starts,
    history,
    hold_for,
    request_json,
    running_container,
    unique,
    wait_applied,
    wait_response,
    wait_until,
    write_payload_sh,
    write_request_sh,
)
from container_apps.tests.support.parts import used

pytestmark = [pytest.mark.docker, pytest.mark.loopdev, pytest.mark.slow]


@dataclass(frozen=True)
class Backend:
    """Which backends the runners use and whether they share one data dir."""

    storage: dict[str, str] | None  # None: the embedded defaults of the data dir
    shared_data_dir: bool
    s3_bucket: str | None = None


@pytest.fixture(
    params=[
        "embedded",
        pytest.param("s3+redis", marks=[pytest.mark.s3, pytest.mark.redis]),
    ]
)
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "embedded":
        return Backend(storage=None, shared_data_dir=True)
    store_url: str = request.getfixturevalue("s3_store_url")
    registry_url: str = request.getfixturevalue("redis_registry_url")
    used("s3")
    used("redis")
    return Backend(
        storage={"BLOBS": store_url, "REGISTRY": registry_url},
        shared_data_dir=False,
        s3_bucket=urlsplit(store_url).netloc,
    )


def publish(docker_client: Any, provider: Any, tag: str, **fields: Any) -> dict[str, Any]:
    """As the provider app: write a payload tagged ``tag`` and ask for a snapshot."""
    app_sh(docker_client, provider, write_payload_sh(tag))
    app_sh(docker_client, provider, write_request_sh(request_json(**fields)))
    return {"digest": app_sh(docker_client, provider, DIGEST_SH).strip()}


def registry_record(data_dir: Path, key: str) -> str | None:
    """The record JSON in the embedded sqlite registry (SPEC §9 layout)."""
    with sqlite3.connect(DataDir(data_dir).shared_registry) as conn:
        row = conn.execute(
            "SELECT value FROM registry WHERE hkey = 'CHAINSTORE_SYNC' AND key = ?", (key,)
        ).fetchone()
    conn.close()
    return None if row is None else str(row[0])


def test_provider_publish_converges_two_consumers_on_the_same_bytes(
    runners: Runners, docker_client: Any, backend: Backend, request: pytest.FixtureRequest
) -> None:
    key = unique("conv")
    shared = runners.data_dir("shared-data")
    dirs = (
        [shared] * 3
        if backend.shared_data_dir
        else [runners.data_dir(n) for n in ("prov-data", "c1-data", "c2-data")]
    )
    provider = runners.start(
        base_config(unique("prov"), "provider", key, storage=backend.storage), dirs[0]
    )
    consumers = [
        runners.start(base_config(unique("cons"), "consumer", key, storage=backend.storage), d)
        for d in dirs[1:]
    ]
    wrote = publish(docker_client, provider, "one", request_id="conv-1", metadata={"epoch": 1})
    response = wait_response(provider)
    assert response["request_id"] == "conv-1"

    for consumer in consumers:
        last = wait_applied(docker_client, consumer, response["cid"])
        assert last["metadata"] == {"epoch": 1}
        assert last["node_id"] == provider.config["NODE_ID"]
        # Checked from inside each consumer's own app container.
        assert app_sh(docker_client, consumer, DIGEST_SH).strip() == wrote["digest"]
        assert app_sh(docker_client, consumer, "cat /app/data/payload.txt") == "payload one\n"

    if not backend.shared_data_dir:
        # Nothing embedded was made: the snapshot travelled through S3 and Redis only.
        for d in dirs:
            assert not (d / "shared").exists()
        s3 = request.getfixturevalue("s3_server").client()
        listed = s3.list_objects_v2(Bucket=backend.s3_bucket, Prefix="car/")
        index = s3.get_object(Bucket=backend.s3_bucket, Key=f"car/{response['cid']}")
        packs = parse_index(index["Body"].read()).packs()  # the default format is chunked
        assert sorted(o["Key"] for o in listed.get("Contents", [])) == sorted(
            f"car/{cid}" for cid in [response["cid"], *packs]
        )
    runners.stop_all()
    assert_nothing_left(docker_client, *set(dirs))


def test_second_publish_replaces_and_retires_the_first(
    runners: Runners, docker_client: Any
) -> None:
    key = unique("retire")
    data = runners.data_dir()
    provider = runners.start(base_config(unique("prov"), "provider", key))
    consumer = runners.start(base_config(unique("cons"), "consumer", key))

    publish(docker_client, provider, "one", request_id="r1")
    first = wait_response(provider)
    wait_applied(docker_client, consumer, first["cid"])
    wrote = publish(docker_client, provider, "two", request_id="r2")
    second = wait_response(provider, not_cid=first["cid"])
    assert second["request_id"] == "r2" and second["cid"] != first["cid"]
    wait_applied(docker_client, consumer, second["cid"])
    assert app_sh(docker_client, consumer, DIGEST_SH).strip() == wrote["digest"]
    assert app_sh(docker_client, consumer, "cat /app/data/payload.txt") == "payload two\n"

    def retired(directory: Path) -> list[dict[str, Any]] | None:
        entries = history(directory)
        done = len(entries) == 2 and entries[0]["deletion"]["deletion_succeeded"] is not None
        return entries if done else None

    sent = wait_until("provider retirement", lambda: retired(provider.paths.history_sent))
    assert [e["cid"] for e in sent] == [first["cid"], second["cid"]]
    assert sent[0]["deletion"]["deletion_succeeded"] is True
    assert sent[0]["deletion"]["deletion_error"] is None
    assert isinstance(sent[0]["deletion"]["deleted_at"], float)
    assert sent[1]["deletion"] == {
        "deleted_at": None,
        "deletion_succeeded": None,
        "deletion_error": None,
    }
    blobs = DataDir(data).shared_blobs
    assert not (blobs / first["cid"]).exists()  # remote copy retired
    assert (blobs / second["cid"]).is_file()
    record = read_json_text(registry_record(data, key))
    assert record["cid"] == second["cid"]

    received = wait_until("consumer retirement", lambda: retired(consumer.paths.history_received))
    assert [e["cid"] for e in received] == [first["cid"], second["cid"]]
    assert received[0]["deletion"]["deletion_succeeded"] is True  # local retirement
    assert received[1]["deletion"]["deletion_succeeded"] is None
    runners.stop_all()
    assert_nothing_left(docker_client, data)


def read_json_text(text: str | None) -> dict[str, Any]:
    assert text is not None
    value = json.loads(text)
    assert isinstance(value, dict)
    return value


def test_consumer_started_after_the_publish_applies_before_its_first_start(
    runners: Runners, docker_client: Any
) -> None:
    key = unique("late")
    data = runners.data_dir()
    provider = runners.start(base_config(unique("prov"), "provider", key))
    wrote = publish(docker_client, provider, "early", request_id="early")
    response = wait_response(provider)

    since = time.time()
    consumer = runners.start(base_config(unique("late"), "consumer", key, app=BOOT_REPORT_APP))
    last = wait_applied(docker_client, consumer, response["cid"])
    assert last["cid"] == response["cid"]
    container = running_container(docker_client, consumer.container)
    assert container is not None

    def boot_line() -> str | None:
        text = container.logs().decode(errors="replace")
        return text if "BOOT-" in text else None

    logs = wait_until("the consumer app's boot line", boot_line, watch=[consumer])
    assert logs.splitlines() == ["BOOT-HAS-DATA"]  # its very first boot saw the data
    assert app_sh(docker_client, consumer, DIGEST_SH).strip() == wrote["digest"]
    # A few poll intervals later it is still the one and only container start.
    hold_for(
        "the first container",
        lambda: (
            getattr(running_container(docker_client, consumer.container), "id", None)
            == container.id
        ),
        3.0,
        watch=[consumer],
    )
    assert container_starts(docker_client, consumer.container, since) == [container.id]
    log = consumer.log()
    assert log.count(f"container {consumer.container} started") == 1
    assert log.index("applying the current snapshot before the container starts") < log.index(
        f"container {consumer.container} started"
    )
    [entry] = history(consumer.paths.history_received)
    assert entry["cid"] == response["cid"] and entry["downtime_seconds"] == 0
    runners.stop_all()
    assert_nothing_left(docker_client, data)


def _stored(backend: Backend, data_dir: Path, request: pytest.FixtureRequest) -> dict[str, int]:
    """Blob name -> size in the store the runners share."""
    if backend.shared_data_dir:
        blobs = DataDir(data_dir).shared_blobs
        return {p.name: p.stat().st_size for p in blobs.iterdir() if not p.name.startswith(".")}
    s3 = request.getfixturevalue("s3_server").client()
    listed = s3.list_objects_v2(Bucket=backend.s3_bucket, Prefix="car/")
    return {o["Key"].removeprefix("car/"): o["Size"] for o in listed.get("Contents", [])}


def _inodes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.lstat().st_ino for p in root.rglob("*") if p.is_file()}


def test_chunked_snapshots_replicate_and_a_one_file_change_moves_only_that_file(
    runners: Runners, docker_client: Any, backend: Backend, request: pytest.FixtureRequest
) -> None:
    key = unique("chunked")
    shared = runners.data_dir("shared-data")
    dirs = (
        [shared] * 2
        if backend.shared_data_dir
        else [runners.data_dir(n) for n in ("prov-data", "cons-data")]
    )
    configs = [
        base_config(unique(role[:4]), role, key, storage=backend.storage)
        for role in ("provider", "consumer")
    ]
    for config in configs:
        config["SYNC"]["ARCHIVE_FORMAT"] = "chunked"
    provider, consumer = (runners.start(c, d) for c, d in zip(configs, dirs, strict=True))
    many = "mkdir -p /app/data/many && for i in 1 2 3 4 5 6 7 8 9 10 11 12; do " + (
        "head -c 262144 /dev/urandom > /app/data/many/f$i.bin; done"
    )
    app_sh(docker_client, provider, f"{write_payload_sh('one')} && {many}")
    app_sh(docker_client, provider, write_request_sh(request_json(request_id="c1")))
    first = wait_response(provider)
    wait_applied(docker_client, consumer, first["cid"])
    digest = app_sh(docker_client, provider, DIGEST_SH).strip()
    assert app_sh(docker_client, consumer, DIGEST_SH).strip() == digest
    if backend.shared_data_dir:
        record = read_json_text(registry_record(dirs[0], key))
        assert record["manifest"]["archive_format"] == "chunked"
    before_store = _stored(backend, dirs[0], request)
    assert first["cid"] in before_store and len(before_store) >= 2  # the index and its packs
    before = _inodes(consumer.data_mount)

    app_sh(docker_client, provider, "echo 'payload two' > /app/data/payload.txt")
    app_sh(docker_client, provider, write_request_sh(request_json(request_id="c2")))
    second = wait_response(provider, not_cid=first["cid"])
    wait_applied(docker_client, consumer, second["cid"])
    assert app_sh(docker_client, consumer, "cat /app/data/payload.txt") == "payload two\n"
    assert (
        app_sh(docker_client, consumer, DIGEST_SH).strip()
        == app_sh(docker_client, provider, DIGEST_SH).strip()
    )
    after = _inodes(consumer.data_mount)
    assert {p for p in after if before.get(p) != after[p]} == {"payload.txt"}
    store = _stored(backend, dirs[0], request)
    added = sum(size for name, size in store.items() if name not in before_store)
    assert added < 64 * 1024, added  # a new small pack and the index, not 3 MiB again
    assert first["cid"] not in store  # the superseded index is retired...
    assert set(before_store) - {first["cid"]} <= set(store)  # ...its packs are still needed
    runners.stop_all()
    assert_nothing_left(docker_client, *set(dirs))
