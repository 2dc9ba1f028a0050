"""README, "Provider", on real parts: publishes from real loop volumes.

Into file:// + sqlite:// and into S3 + Redis.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from container_apps.sync import constants as C
from container_apps.sync.records import parse_record
from container_apps.tests.support.faults import FaultyRegistry
from container_apps.tests.support.provider_rig import (
    NOW,
    Rig,
    archive_names,
    assert_clean,
    make_rig,
)
from container_apps.volumes.binding import VolumeBinding

# --- real parts ----------


def _loop_rig(tmp_path: Path, make_loop_volume: Any, store: Any, registry: Any) -> Rig:
    vols = {}
    for name in ("main", "extra"):
        vol = make_loop_volume(name, "16M")
        vol.provision()
        vols[name] = vol.mount_point
    (vols["main"] / "db").mkdir()
    (vols["main"] / "db" / "rows.bin").write_bytes(os.urandom(300_000))
    (vols["extra"] / "notes.txt").write_text("extra volume")
    bindings = [
        VolumeBinding("main", "fixed", vols["main"], "/app/data"),
        VolumeBinding("extra", "fixed", vols["extra"], "/app/extra"),
    ]
    return make_rig(
        tmp_path,
        store=store,
        registry=FaultyRegistry(registry),
        data=vols["main"],
        bindings=bindings,
    )


def _publish_and_check(rig: Rig) -> None:
    rig.request({"archive_paths": ["/app/data", "/app/extra/notes.txt"], "request_id": "real"})
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.status == "ok", rig.response()
    record = parse_record(rig.registry.inner.hget(C.CHAINSTORE_HKEY, "key-1"))
    assert record.cid == outcome.cid
    blob = rig.store.inner.get(record.cid)
    names = archive_names(blob)
    assert "app/data/db/rows.bin" in names and "app/extra/notes.txt" in names
    assert record.manifest.members == len(names)
    assert rig.journal == ["stop", "start", "put"]
    assert_clean(rig)


@pytest.mark.loopdev
def test_publish_from_loop_volumes_into_file_store_and_sqlite(tmp_path, make_loop_volume) -> None:
    from container_apps.registries.factory import open_registry
    from container_apps.stores.factory import open_store

    store = open_store(f"file://{tmp_path / 'blobs'}", cache_dir=tmp_path / "cache")
    registry = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    _publish_and_check(_loop_rig(tmp_path, make_loop_volume, store, registry))


@pytest.mark.loopdev
@pytest.mark.s3
@pytest.mark.redis
def test_publish_from_loop_volumes_into_s3_and_redis(
    tmp_path, make_loop_volume, s3_store_url, redis_registry_url
) -> None:
    from container_apps.registries.factory import open_registry
    from container_apps.stores.factory import open_store

    store = open_store(s3_store_url, cache_dir=tmp_path / "cache")
    registry = open_registry(redis_registry_url)
    rig = _loop_rig(tmp_path, make_loop_volume, store, registry)
    _publish_and_check(rig)
    first = rig.history.entries()[0].cid
    (rig.data / "db" / "rows.bin").write_bytes(b"changed")
    rig.request({"archive_paths": ["/app/data"]})
    assert rig.publisher.publish_pending(NOW + 10).status == "ok"  # type: ignore[union-attr]
    from container_apps.errors import BlobNotFound

    store.delete(first, remote=False, local=True)  # drop the cache so get() asks S3
    with pytest.raises(BlobNotFound):
        store.get(first)  # retired remotely
