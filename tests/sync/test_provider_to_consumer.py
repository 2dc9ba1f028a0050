"""The provider/consumer seam on the memory backends: what one writes, the other applies.

The two sides were written separately; these tests run a real ``SnapshotPublisher``
into a real ``SnapshotConsumer`` (shared store and registry, fake containers) so that
member names, ``archive_paths`` normalisation and manifest fields must agree.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from container_apps.registries.memory import MemoryRegistry
from container_apps.stores.memory import MemoryBlobStore
from container_apps.sync import constants as C
from container_apps.sync.consumer import ConsumerSettings, SnapshotConsumer
from container_apps.sync.paths import PathResolver
from container_apps.sync.record_source import RecordSource
from container_apps.tests.support.consumer_rig import leftovers, tree
from container_apps.tests.support.fakes import FakeContainers
from container_apps.tests.support.provider_rig import NOW, make_rig
from container_apps.volumes.binding import VolumeBinding

LOG = logging.getLogger("test.seam")


def _consumer(tmp: Path, store: MemoryBlobStore, registry: MemoryRegistry) -> tuple:
    data, extra = tmp / "c-data", tmp / "c-extra"
    data.mkdir()
    extra.mkdir()
    (data / "local-only.txt").write_text("consumer's own")
    resolver = PathResolver(
        [
            VolumeBinding("data", "legacy", data, "/app/data"),  # legacy <-> fixed works
            VolumeBinding("extra", "fixed", extra, "/app/extra"),
        ]
    )
    settings = ConsumerSettings(tmp / "c-state", tmp / "c-control", tmp / "c-hist")
    settings.control_dir.mkdir()
    containers = FakeContainers()
    source = RecordSource(registry, "key-1", 60.0, LOG)
    consumer = SnapshotConsumer(settings, source, store, containers, resolver, LOG)
    return consumer, containers, data, extra


def _provider(tmp: Path):
    extra = tmp / "p-extra"
    extra.mkdir()
    (extra / "notes.txt").write_text("notes")
    (extra / "other.txt").write_text("not requested")
    store = MemoryBlobStore(tmp / "blobs-cache")
    registry = MemoryRegistry()
    data = tmp / "p-data"
    (data / "sub" / "deep").mkdir(parents=True)
    (data / "a.txt").write_text("alpha")
    (data / "sub" / "deep" / "b.txt").write_text("beta")
    rig = make_rig(
        tmp,
        store=store,
        registry=registry,
        data=data,
        bindings=[
            VolumeBinding("data", "fixed", data, "/app/data"),
            VolumeBinding("extra", "legacy", extra, "/app/extra"),
        ],
    )
    return rig, store, registry


def test_published_snapshot_with_trailing_slash_file_and_nested_paths_applies(
    tmp_path: Path,
) -> None:
    rig, store, registry = _provider(tmp_path)
    rig.request(
        {
            # a trailing slash, a path inside another requested path, and a single file
            "archive_paths": ["/app/data/", "/app/data/sub", "/app/extra/notes.txt"],
            "metadata": {"epoch": 3},
        }
    )
    published = rig.publisher.publish_pending(NOW)
    assert published is not None and published.status == "ok", rig.response()
    record = json.loads(registry.hget(C.CHAINSTORE_HKEY, "key-1") or "")
    assert record["manifest"]["archive_paths"] == [
        "/app/data",
        "/app/data/sub",
        "/app/extra/notes.txt",
    ]
    consumer, containers, data, extra = _consumer(tmp_path, store, registry)
    outcome = consumer.tick(NOW + 5)
    assert outcome is not None and outcome.applied, outcome
    assert containers.calls == ["stop", "start"]
    assert (data / "a.txt").read_text() == "alpha"
    assert (data / "sub" / "deep" / "b.txt").read_text() == "beta"
    assert (data / "local-only.txt").read_text() == "consumer's own"
    assert sorted(p.name for p in extra.iterdir()) == ["notes.txt"]
    assert leftovers(data) == [] and leftovers(extra) == []
    last = json.loads((tmp_path / "c-control" / C.LAST_APPLY_FILE).read_text())
    assert last["cid"] == published.cid and last["metadata"] == {"epoch": 3}
    assert last["node_id"] == "node-a" and last["version"] == int(NOW)


def test_second_publish_is_applied_over_the_first(tmp_path: Path) -> None:
    rig, store, registry = _provider(tmp_path)
    rig.request({"archive_paths": ["/app/data"]})
    first = rig.publisher.publish_pending(NOW)
    consumer, _, data, _ = _consumer(tmp_path, store, registry)
    assert consumer.tick(NOW + 1).applied  # type: ignore[union-attr]
    (rig.data / "a.txt").write_text("alpha v2")
    rig.request({"archive_paths": ["/app/data"]})
    second = rig.publisher.publish_pending(NOW + 10)
    assert first is not None and second is not None and first.cid != second.cid
    assert store.cids() == {second.cid}  # provider retired the first remotely
    before = tree(data)
    outcome = consumer.tick(NOW + 11)
    assert outcome is not None and outcome.applied and outcome.cid == second.cid
    assert (data / "a.txt").read_text() == "alpha v2"
    assert set(tree(data)) == set(before)
