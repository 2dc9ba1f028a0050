"""Hostile records in a real Redis registry, with the S3 store (issue 9 item 13).

The raw values are written with redis-py straight into the layout of docs/BACKENDS.md (``HSET
NS:CHAINSTORE_SYNC <key> <value>``), as anyone who can write the registry could. Before
the bounds, ``SyncManager.start`` raised ValueError/OverflowError/RecursionError out of
record parsing (``car run`` exited 1 with a traceback and the app never started). Now
the start goes on, each tick quarantines the record once under its key and CID, and a
good record published afterwards is applied from S3.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from container_apps.layout import DataDir
from container_apps.stores.factory import open_store
from container_apps.sync import constants as C
from container_apps.sync.config import SyncConfig
from container_apps.sync.manager import SyncManager, SyncSite, build_sync_manager
from container_apps.tests.support.consumer_rig import build_snapshot, make_record, new_entries
from container_apps.tests.support.fakes import FakeContainers
from container_apps.tests.support.hostile_records import GOOD_CID, HOSTILE
from container_apps.volumes.binding import VolumeBinding

pytestmark = [pytest.mark.redis, pytest.mark.s3]
KEY = "hostile-key"


@pytest.fixture
def redis_hash(redis_registry_url: str) -> Iterator[tuple[Any, str]]:
    """A redis-py client and the hash name the registry uses for CHAINSTORE_SYNC."""
    import redis

    namespace = parse_qs(urlsplit(redis_registry_url).query)["namespace"][0]
    client = redis.Redis.from_url(redis_registry_url.split("?")[0])
    try:
        yield client, f"{namespace}:{C.CHAINSTORE_HKEY}"
    finally:
        client.close()


def _manager(
    tmp_path: Path, s3_store_url: str, redis_registry_url: str
) -> tuple[SyncManager, FakeContainers, Path]:
    paths = DataDir(tmp_path / "data").instance("consumer")
    paths.ensure()
    paths.volume_sync_dir.mkdir(parents=True)
    mount = paths.volume_mount("vol")
    mount.mkdir(parents=True)
    site = SyncSite(
        paths=paths,
        bindings=[VolumeBinding("vol", "fixed", mount, "/app/data")],
        node_id="consumer-1",
        blobs_url=s3_store_url,
        registry_url=redis_registry_url,
    )
    cfg = SyncConfig.parse({"ENABLED": True, "KEY": KEY, "TYPE": "consumer", "POLL_INTERVAL": 1})
    containers = FakeContainers(running=False)
    return build_sync_manager(cfg, site, containers), containers, mount


@pytest.mark.parametrize("value", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_record_in_redis_never_stops_a_start_and_is_quarantined_once(
    tmp_path: Path,
    s3_store_url: str,
    redis_registry_url: str,
    redis_hash: tuple[Any, str],
    value: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, hash_name = redis_hash
    client.hset(hash_name, KEY, value)
    manager, containers, mount = _manager(tmp_path, s3_store_url, redis_registry_url)
    assert manager.consumer is not None

    with caplog.at_level(logging.WARNING):
        manager.start()  # before: ValueError / OverflowError / RecursionError
        assert manager.may_start()
        for tick in range(1, 6):  # well within the first 60 s backoff step
            manager.tick(float(tick * 10))
    assert containers.calls == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert repr(KEY) in warnings[0] and GOOD_CID in warnings[0]
    [entry] = manager.consumer.quarantine.entries()
    assert entry.cid == GOOD_CID and repr(KEY) in entry.error

    # The provider publishes a good snapshot: the next tick applies it from S3.
    archive = build_snapshot(tmp_path / "good.tar.zst", new_entries())
    record = make_record(archive)
    store = open_store(s3_store_url, cache_dir=tmp_path / "provider-cache")
    assert store.put(archive) == record.cid
    client.hset(hash_name, KEY, record.to_json())
    manager.tick(1000.0)
    assert manager.consumer.state.applied_cid() == record.cid
    assert (mount / "replace.txt").read_bytes() == b"new bytes"
