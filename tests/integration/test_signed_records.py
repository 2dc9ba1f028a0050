"""Signed records end to end: `car run` processes, real Docker, loop volumes, S3 and Redis.

Keys come from `car keys generate`. A signed provider's snapshot reaches a consumer that
trusts its key. Then, as an attacker who can write the S3 bucket and the Redis registry
but holds no trusted signing key, the test uploads its own snapshot and writes records
for it: unsigned, signed with its own key, and a record validly signed for another sync
key copied under this one. None is ever applied: the consumer quarantines each one before
downloading it, its app keeps running (no restart), its data stays as it was, and the
provider's next snapshot is applied as usual (README, "Signed records").
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from container_apps.stores.factory import open_store
from container_apps.sync import constants as C
from container_apps.sync.key_files import load_signing_key
from container_apps.sync.signing import RecordSigner
from container_apps.tests.integration.conftest import (
    DIGEST_SH,
    Runners,
    app_sh,
    assert_nothing_left,
    base_config,
    car,
    container_starts,
    hold_for,
    read_json,
    request_json,
    running_container,
    unique,
    wait_applied,
    wait_response,
    wait_until,
    write_payload_sh,
    write_request_sh,
)
from container_apps.tests.support.consumer_rig import build_snapshot, d, f, make_record
from container_apps.tests.support.parts import used

pytestmark = [
    pytest.mark.docker,
    pytest.mark.loopdev,
    pytest.mark.slow,
    pytest.mark.s3,
    pytest.mark.redis,
]


@pytest.fixture
def redis_hash(redis_registry_url: str) -> Iterator[tuple[Any, str]]:
    """A redis-py client and the hash the registry keeps records in (docs/BACKENDS.md)."""
    import redis

    namespace = parse_qs(urlsplit(redis_registry_url).query)["namespace"][0]
    client = redis.Redis.from_url(redis_registry_url.split("?")[0])
    try:
        yield client, f"{namespace}:{C.CHAINSTORE_HKEY}"
    finally:
        client.close()


def _generate(path: Path) -> str:
    result = car("keys", "generate", "--out", str(path))
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _status(runner: Any) -> dict[str, Any]:
    result = car("sync", "status", runner.instance_id, "--json", data_dir=runner.data_dir)
    [status] = json.loads(result.stdout)
    assert isinstance(status, dict)
    return status


def test_forged_and_replayed_records_are_never_applied_and_signed_ones_are(
    runners: Runners,
    docker_client: Any,
    tmp_path: Path,
    s3_store_url: str,
    redis_registry_url: str,
    redis_hash: tuple[Any, str],
) -> None:
    used("s3")
    used("redis")
    keys = tmp_path / "keys"
    keys.mkdir()
    provider_pub = _generate(keys / "provider.key")
    attacker_key = keys / "attacker.key"
    _generate(attacker_key)
    storage = {"BLOBS": s3_store_url, "REGISTRY": redis_registry_url}
    key = unique("signed")
    prov_cfg = base_config(unique("prov"), "provider", key, storage=storage)
    prov_cfg["SYNC"]["SIGNING_KEY_FILE"] = str(keys / "provider.key")
    cons_cfg = base_config(unique("cons"), "consumer", key, storage=storage)
    cons_cfg["SYNC"]["TRUSTED_KEYS"] = [provider_pub]
    provider = runners.start(prov_cfg, runners.data_dir("prov-data"))
    consumer = runners.start(cons_cfg, runners.data_dir("cons-data"))

    # 1. The signed provider -> consumer path over S3 and Redis.
    app_sh(docker_client, provider, write_payload_sh("one"))
    app_sh(docker_client, provider, write_request_sh(request_json(request_id="one")))
    first = wait_response(provider)
    client, hash_name = redis_hash
    published = json.loads(client.hget(hash_name, key))
    assert published["signature"]["public_key"] == provider_pub
    wait_applied(docker_client, consumer, first["cid"])
    digest_one = app_sh(docker_client, consumer, DIGEST_SH).strip()
    assert _status(consumer)["records"] == "verified (1 trusted key(s))"
    assert _status(provider)["records"] == "signed"

    # 2. The attacker: store and registry write access, no trusted signing key.
    store = open_store(s3_store_url, cache_dir=tmp_path / "attacker-cache")
    container_id = running_container(docker_client, consumer.container).id
    since = time.time()
    attacker = RecordSigner(load_signing_key(attacker_key))
    # Stands for the provider of another sync set signing with the same key.
    other_set = RecordSigner(load_signing_key(keys / "provider.key"))
    attempts = [
        ("unsigned", None, key, "is unsigned"),
        ("attacker", attacker, key, "not in SYNC.TRUSTED_KEYS"),
        ("replayed", other_set, unique("other-set"), "signed for sync key"),
    ]
    for tag, signer, signed_for, words in attempts:
        archive = build_snapshot(
            tmp_path / f"{tag}.tar.zst",
            [d("app/data"), f("app/data/payload.txt", f"forged {tag}\n".encode())],
        )
        record = make_record(archive, node_id=provider.config["NODE_ID"])
        assert store.put(archive) == record.cid
        if signer is not None:
            record = signer.sign(signed_for, record)
        client.hset(hash_name, key, record.to_json())

        def refused(cid: str = record.cid) -> dict[str, Any] | None:
            entries = _status(consumer)["quarantine"]
            return next((e for e in entries if e["cid"] == cid), None)

        entry = wait_until(f"{tag} record quarantined", refused, watch=[consumer])
        assert words in entry["error"] and entry["kind"] == "validation", entry
        # Nothing of it was downloaded: the consumer's download dir never held it.
        assert not (consumer.paths.sync_state / "downloads" / record.cid).exists()

    hold_for(
        "the consumer's app running untouched",
        lambda: running_container(docker_client, consumer.container) is not None,
        3.0,
        watch=[consumer],
    )
    assert container_starts(docker_client, consumer.container, since) == []
    assert running_container(docker_client, consumer.container).id == container_id
    assert app_sh(docker_client, consumer, DIGEST_SH).strip() == digest_one
    assert app_sh(docker_client, consumer, "cat /app/data/payload.txt") == "payload one\n"
    last = read_json(consumer.sync_dir / "last_apply.json")
    assert last["cid"] == first["cid"]

    # 3. The provider's next snapshot is applied as usual.
    app_sh(docker_client, provider, write_payload_sh("two"))
    app_sh(docker_client, provider, write_request_sh(request_json(request_id="two")))
    second = wait_response(provider, not_cid=first["cid"])
    wait_applied(docker_client, consumer, second["cid"])
    assert app_sh(docker_client, consumer, "cat /app/data/payload.txt") == "payload two\n"
    runners.stop_all()
    assert_nothing_left(docker_client, *runners.data_dirs)
