"""Encryption at rest end to end (README, "Encryption at rest"): `car run` processes on
real Docker and loop volumes, S3 and Redis.

What the store holds is read straight from S3: no zstd frame, no path name, no
plaintext hash. Damage on the real store, a consumer with another key file, and an
incremental snapshot under keyed chunk ids are each checked from the consumer's side:
refused before its app is stopped, quarantined, its volume untouched.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from container_apps.registries.factory import open_registry
from container_apps.sync import constants as C
from container_apps.sync.quarantine import Quarantine, QuarantineEntry
from container_apps.tests.integration.conftest import (
    DIGEST_SH,
    RunnerProcess,
    Runners,
    app_sh,
    base_config,
    container_starts,
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

pytestmark = [
    pytest.mark.docker,
    pytest.mark.loopdev,
    pytest.mark.s3,
    pytest.mark.redis,
    pytest.mark.slow,
]

ZSTD_MAGIC = bytes.fromhex("28b52ffd")
SECRET_NAME = b"secret-plans"


def _key_file(tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    path.write_bytes(os.urandom(32))
    os.chmod(path, 0o600)
    return str(path)


def _config(role: str, key: str, storage: dict[str, str], key_file: str, fmt: str) -> Any:
    config = base_config(unique(role[:4]), role, key, storage=storage)
    config["SYNC"].update({"ENCRYPTION_KEY_FILE": key_file, "ARCHIVE_FORMAT": fmt})
    return config


def _objects(s3: Any, bucket: str) -> dict[str, bytes]:
    """Every stored object; one the provider's retention deletes between list and get
    (the previous index, retired right after the publish answered) is left out."""
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="car/").get("Contents", [])
    found: dict[str, bytes] = {}
    for o in listed:
        try:
            body = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
        except s3.exceptions.NoSuchKey:
            continue
        found[o["Key"].removeprefix("car/")] = body
    return found


def _quarantined(runner: RunnerProcess, cid: str) -> QuarantineEntry:
    def probe() -> QuarantineEntry | None:
        entries = Quarantine(runner.paths.sync_state / C.QUARANTINE_FILE).entries()
        return next((e for e in entries if e.cid == cid), None)

    return wait_until(f"{runner.instance_id} to quarantine {cid}", probe, watch=[runner])


def _publish(docker_client: Any, provider: RunnerProcess, script: str, rid: str) -> None:
    app_sh(docker_client, provider, script)
    app_sh(docker_client, provider, write_request_sh(request_json(request_id=rid)))


def test_encrypted_chunked_snapshots_on_s3_hide_content_and_refuse_damage_and_wrong_keys(
    runners: Runners,
    docker_client: Any,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    store_url: str = request.getfixturevalue("s3_store_url")
    registry_url: str = request.getfixturevalue("redis_registry_url")
    used("s3")
    used("redis")
    s3, bucket = request.getfixturevalue("s3_server").client(), urlsplit(store_url).netloc
    registry = open_registry(registry_url)
    storage = {"BLOBS": store_url, "REGISTRY": registry_url}
    # The provider publishes under one key; the test hands each record to the consumers'
    # key itself, so it can damage the store between the publish and the apply.
    published, applied = unique("enc-pub"), unique("enc-app")
    right, wrong = _key_file(tmp_path, "set.key"), _key_file(tmp_path, "other.key")
    provider = runners.start(
        _config("provider", published, storage, right, "chunked"), runners.data_dir("p")
    )
    consumer = runners.start(
        _config("consumer", applied, storage, right, "chunked"), runners.data_dir("c")
    )
    stranger = runners.start(
        _config("consumer", applied, storage, wrong, "chunked"), runners.data_dir("s")
    )
    app_sh(docker_client, stranger, "echo 'stranger data' > /app/data/own.txt")
    many = "mkdir -p /app/data/many && for i in 1 2 3 4 5 6 7 8; do " + (
        "head -c 262144 /dev/urandom > /app/data/many/f$i.bin; done"
    )
    secret = f"echo 'plans' > /app/data/{SECRET_NAME.decode()}.txt"
    _publish(docker_client, provider, f"{write_payload_sh('one')} && {many} && {secret}", "e1")
    first = wait_response(provider)
    record = json.loads(registry.hget(C.CHAINSTORE_HKEY, published) or "{}")
    assert record["manifest"]["encryption"] == C.ENCRYPTION_SEALED

    # What S3 holds: sealed packs and a sealed index, nothing of the plaintext.
    stored = _objects(s3, bucket)
    assert first["cid"] in stored and len(stored) >= 2
    assert stored[first["cid"]].startswith(b"CARSEAL1")
    for name, data in stored.items():
        assert ZSTD_MAGIC not in data, name
        assert SECRET_NAME not in data and b"payload" not in data and b"many/f" not in data
        assert data.startswith((b"CARSEAL1", b"CARPACK1")), name

    since = time.time()
    registry.hset(C.CHAINSTORE_HKEY, applied, json.dumps(record))
    wait_applied(docker_client, consumer, first["cid"])
    digest = app_sh(docker_client, provider, DIGEST_SH).strip()
    assert app_sh(docker_client, consumer, DIGEST_SH).strip() == digest

    # Another key file: one clear error, refused before its app was stopped.
    refused = _quarantined(stranger, first["cid"])
    assert "cannot decrypt snapshot index: wrong ENCRYPTION_KEY_FILE?" in refused.error
    assert container_starts(docker_client, stranger.container, since) == []
    assert app_sh(docker_client, stranger, "cat /app/data/own.txt") == "stranger data\n"
    assert app_sh(docker_client, stranger, "ls /app/data") == "own.txt\n"

    # An incremental snapshot under keyed chunk ids sends only what changed.
    _publish(docker_client, provider, "echo 'payload two' > /app/data/payload.txt", "e2")
    second = wait_response(provider, not_cid=first["cid"])
    after = _objects(s3, bucket)
    new = {name: data for name, data in after.items() if name not in stored}
    assert second["cid"] in new and sum(len(d) for d in new.values()) < 64 * 1024
    [new_pack] = [name for name, data in new.items() if data.startswith(b"CARPACK1")]

    # A bit flipped in the new pack on S3: refused while the app runs, volume untouched.
    damaged = bytearray(new[new_pack])
    damaged[len(damaged) // 2] ^= 0x04
    s3.put_object(Bucket=bucket, Key=f"car/{new_pack}", Body=bytes(damaged))
    since = time.time()
    record = json.loads(registry.hget(C.CHAINSTORE_HKEY, published) or "{}")
    registry.hset(C.CHAINSTORE_HKEY, applied, json.dumps(record))
    entry = _quarantined(consumer, second["cid"])
    assert "fails authentication" in entry.error, entry.error
    running = running_container(docker_client, consumer.container)
    assert running is not None and container_starts(docker_client, consumer.container, since) == []
    assert app_sh(docker_client, consumer, "cat /app/data/payload.txt") == "payload one\n"
    assert app_sh(docker_client, consumer, DIGEST_SH).strip() == digest
    runners.stop_all()


def test_encrypted_tar_zst_on_s3_is_sealed_and_applies(
    runners: Runners,
    docker_client: Any,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    store_url: str = request.getfixturevalue("s3_store_url")
    registry_url: str = request.getfixturevalue("redis_registry_url")
    used("s3")
    used("redis")
    s3, bucket = request.getfixturevalue("s3_server").client(), urlsplit(store_url).netloc
    storage = {"BLOBS": store_url, "REGISTRY": registry_url}
    key, key_file = unique("enc-tar"), _key_file(tmp_path, "set.key")
    provider = runners.start(
        _config("provider", key, storage, key_file, "tar.zst"), runners.data_dir("p")
    )
    consumer = runners.start(
        _config("consumer", key, storage, key_file, "tar.zst"), runners.data_dir("c")
    )
    secret = f"echo 'plans' > /app/data/{SECRET_NAME.decode()}.txt"
    _publish(docker_client, provider, f"{write_payload_sh('tar')} && {secret}", "t1")
    response = wait_response(provider)
    [(name, data)] = _objects(s3, bucket).items()
    assert name == response["cid"] and data.startswith(b"CARSEAL1")
    assert ZSTD_MAGIC not in data and SECRET_NAME not in data
    wait_applied(docker_client, consumer, response["cid"])
    assert app_sh(docker_client, consumer, "cat /app/data/secret-plans.txt") == "plans\n"
    assert (
        app_sh(docker_client, consumer, DIGEST_SH).strip()
        == app_sh(docker_client, provider, DIGEST_SH).strip()
    )
    runners.stop_all()
