"""SPEC §7.1-§7.4, §7.9, §8 (sent side): one provider tick, each failure stage, commit point."""

from __future__ import annotations

import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import zstandard
from container_apps.errors import ContainerRuntimeError, RegistryUnavailable, StoreUnavailable
from container_apps.registries.memory import MemoryRegistry
from container_apps.stores.memory import MemoryBlobStore
from container_apps.sync import constants as C
from container_apps.sync.control_files import ControlDir
from container_apps.sync.history import HistoryLog
from container_apps.sync.paths import PathResolver
from container_apps.sync.provider import PublisherConfig, PublishTargets, SnapshotPublisher
from container_apps.sync.records import parse_record
from container_apps.tests.fakes import FakeClock, FakeContainers
from container_apps.tests.faults import Fault, FaultyBlobStore, FaultyRegistry
from container_apps.volumes.binding import VolumeBinding

NOW = 1_764_300_000.5


class JournalStore(FaultyBlobStore):
    """FaultyBlobStore that also writes "put"/"delete" into a shared call journal."""

    def __init__(self, inner: Any, journal: list[str], faults: Any = None) -> None:
        super().__init__(inner, faults)
        self.journal = journal

    def put(self, src: Path, *, progress: Any = None) -> str:
        self.journal.append("put")
        assert src.exists()
        return super().put(src, progress=progress)


@dataclass
class Rig:
    publisher: SnapshotPublisher
    control_dir: Path
    data: Path
    work: Path
    store: Any
    registry: Any
    history: HistoryLog
    containers: FakeContainers
    journal: list[str]

    def request(self, body: Any) -> None:
        text = body if isinstance(body, str) else json.dumps(body)
        (self.control_dir / C.REQUEST_FILE).write_text(text)

    def response(self) -> dict[str, Any]:
        return json.loads((self.control_dir / C.RESPONSE_FILE).read_text())

    def invalid(self) -> dict[str, Any]:
        return json.loads((self.control_dir / C.INVALID_FILE).read_text())

    def record(self) -> dict[str, Any]:
        raw = self.registry.inner.hget(C.CHAINSTORE_HKEY, "key-1")
        return json.loads(raw)


def make_rig(
    tmp_path: Path,
    *,
    store: Any = None,
    store_faults: Any = None,
    registry: Any = None,
    data: Path | None = None,
    bindings: list[VolumeBinding] | None = None,
    **cfg: Any,
) -> Rig:
    control_dir = tmp_path / "volume-sync"
    control_dir.mkdir()
    if data is None:
        data = tmp_path / "data"
        (data / "sub").mkdir(parents=True)
        (data / "a.txt").write_text("alpha")
        (data / "sub" / "b.txt").write_text("beta")
    journal: list[str] = []
    store = JournalStore(store or MemoryBlobStore(tmp_path / "cache"), journal, store_faults)
    registry = registry or FaultyRegistry(MemoryRegistry())
    history = HistoryLog(tmp_path / "history" / "sent")
    containers = FakeContainers(journal)
    work = tmp_path / "work"
    config = PublisherConfig(sync_key="key-1", node_id="node-a", work_dir=work, **cfg)
    resolver = PathResolver(bindings or [VolumeBinding("data", "fixed", data, "/app/data")])
    publisher = SnapshotPublisher(
        config,
        ControlDir(control_dir, "node-a", FakeClock(NOW + 1)),
        resolver,
        containers,
        PublishTargets(store, registry, history),
    )
    return Rig(publisher, control_dir, data, work, store, registry, history, containers, journal)


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return make_rig(tmp_path)


def _archive_names(path: Path, fmt: str = C.ARCHIVE_FORMAT_ZST) -> list[str]:
    if fmt == C.ARCHIVE_FORMAT_GZ:
        with tarfile.open(path, "r:gz") as tar:
            return tar.getnames()
    data = zstandard.ZstdDecompressor().decompressobj().decompress(path.read_bytes())
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return tar.getnames()


def _assert_clean(rig: Rig) -> None:
    assert not os.path.lexists(rig.control_dir / C.REQUEST_FILE)
    assert not os.path.lexists(rig.control_dir / C.PROCESSING_FILE)
    assert not rig.work.exists() or list(rig.work.iterdir()) == []


# --- success ----------


def test_publish_success_record_response_and_history(rig: Rig) -> None:
    rig.request({"archive_paths": ["/app/data/"], "metadata": {"epoch": 1}, "request_id": "r-7"})
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.status == "ok"
    record = rig.record()
    cid = record["cid"]
    assert cid.startswith("bafkrei") and outcome.cid == cid
    assert record["version"] == int(NOW) and record["timestamp"] == NOW
    assert record["node_id"] == "node-a" and record["metadata"] == {"epoch": 1}
    runtime = {"provider_capture": "offline", "consumer_apply": "offline_restart"}
    assert record["runtime"] == runtime
    blob = rig.store.inner.get(cid)
    manifest = record["manifest"]
    assert manifest == {
        "schema_version": 1,
        "archive_paths": ["/app/data"],
        "archive_format": "tar.zst",
        "archive_size_bytes": blob.stat().st_size,
        "encryption": "r1fs-default",
        "runtime": runtime,
        "archive_sha256": manifest["archive_sha256"],
        "unpacked_bytes": 9,
        "members": 4,
    }
    parse_record(json.dumps(record))  # the consumer's codec accepts it
    assert _archive_names(blob) == [
        "app/data",
        "app/data/a.txt",
        "app/data/sub",
        "app/data/sub/b.txt",
    ]
    response = rig.response()
    assert response == {
        "status": "ok",
        "cid": cid,
        "version": int(NOW),
        "published_timestamp": NOW,
        "archive_paths": ["/app/data"],
        "archive_size_bytes": manifest["archive_size_bytes"],
        "chainstore_ack": True,
        "metadata": {"epoch": 1},
        "request_id": "r-7",
        "downtime_seconds": response["downtime_seconds"],
    }
    assert response["downtime_seconds"] >= 0
    [entry] = rig.history.entries()
    assert entry.path.name == f"{int(NOW):010d}__{cid[:12]}.json"
    data = entry.data
    assert data["cid"] == cid and data["version"] == int(NOW)
    assert data["published_timestamp"] == NOW and data["node_id"] == "node-a"
    assert (
        data["manifest"] == manifest
        and data["archive_size_bytes"] == manifest["archive_size_bytes"]
    )
    assert data["chainstore_ack"] is True
    assert (
        data["request"]["archive_paths"] == ["/app/data"] and data["request"]["request_id"] == "r-7"
    )
    assert set(data["durations"]) == {"archive", "upload", "publish"}
    assert all(isinstance(v, float) for v in data["durations"].values())
    assert data["downtime_seconds"] == response["downtime_seconds"]
    assert data["deletion"] == {
        "deleted_at": None,
        "deletion_succeeded": None,
        "deletion_error": None,
    }
    _assert_clean(rig)


def test_nothing_pending_does_nothing(rig: Rig) -> None:
    assert rig.publisher.publish_pending(NOW) is None
    assert rig.journal == [] and list(rig.control_dir.iterdir()) == []


def test_container_restarts_before_upload(rig: Rig) -> None:
    rig.request({"archive_paths": ["/app/data"]})
    rig.publisher.publish_pending(NOW)
    assert rig.journal == ["stop", "start", "put"]


def test_stale_invalid_is_removed_on_success(rig: Rig) -> None:
    (rig.control_dir / C.INVALID_FILE).write_text("{}")
    rig.request({"archive_paths": ["/app/data"]})
    rig.publisher.publish_pending(NOW)
    assert not (rig.control_dir / C.INVALID_FILE).exists()


def test_tar_gz_format_is_published_and_readable(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, archive_format="tar.gz", compression_level=9)
    rig.request({"archive_paths": ["/app/data/sub"]})
    assert rig.publisher.publish_pending(NOW).status == "ok"  # type: ignore[union-attr]
    record = rig.record()
    assert record["manifest"]["archive_format"] == "tar.gz"
    blob = rig.store.inner.get(record["cid"])
    assert _archive_names(blob, "tar.gz") == ["app/data/sub", "app/data/sub/b.txt"]


# --- validation ----------


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"archive_paths": ["/etc"]}, "not inside any mounted volume"),
        ({"archive_paths": ["/app/data/../x"]}, "'..'"),
        ([1, 2], "JSON object"),
        ({"archive_paths": ["/app/data"], "runtime": {"provider_capture": "online"}}, "online"),
    ],
)
def test_validation_failure_does_not_stop_the_container(rig: Rig, body: Any, fragment: str) -> None:
    rig.request(body)
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.stage == "validation"
    assert rig.journal == []
    response = rig.response()
    assert response["status"] == "error" and response["stage"] == "validation"
    assert fragment in response["error"]
    assert rig.invalid()["request"] == body
    _assert_clean(rig)


def test_unparseable_body_reports_raw_body(rig: Rig) -> None:
    rig.request('{"archive_paths": [')
    rig.publisher.publish_pending(NOW)
    assert rig.invalid()["_error"]["raw_body"] == '{"archive_paths": ['
    assert rig.invalid()["request"] is None
    assert rig.journal == []


def test_error_response_echoes_request_id(rig: Rig) -> None:
    rig.request({"archive_paths": ["/nope"], "request_id": "abc"})
    rig.publisher.publish_pending(NOW)
    assert rig.response()["request_id"] == "abc"
    assert rig.response()["archive_paths"] == ["/nope"]


def test_symlinked_control_dir_is_skipped(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    real = tmp_path / "real-dir"
    rig.control_dir.rename(real)
    os.symlink(real, rig.control_dir)
    (real / C.REQUEST_FILE).write_text('{"archive_paths": ["/app/data"]}')
    assert rig.publisher.publish_pending(NOW) is None
    assert (real / C.REQUEST_FILE).exists() and rig.journal == []


# --- runtime_stop and archive_build ----------


def test_stop_failure_is_runtime_stop_consumed_and_not_uploaded(rig: Rig) -> None:
    rig.containers.fail_stop = ContainerRuntimeError("engine said no at /var/lib/docker")
    rig.request({"archive_paths": ["/app/data"]})
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.stage == "runtime_stop"
    assert rig.journal == ["stop"]  # still running: no start, no upload
    response = rig.response()
    assert response["stage"] == "runtime_stop" and "/var/lib/docker" not in response["error"]
    assert rig.store.count("put") == 0 and rig.registry.count("hset") == 0
    _assert_clean(rig)


def test_stop_failure_restarts_a_container_that_went_down(rig: Rig) -> None:
    rig.containers.fail_stop = ContainerRuntimeError("timeout")
    rig.containers.running = False
    rig.request({"archive_paths": ["/app/data"]})
    rig.publisher.publish_pending(NOW)
    assert rig.journal == ["stop", "start"]


def test_container_restarts_after_archive_failure(rig: Rig, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("TOP-SECRET")
    # The app plants a link after validation, just before the stop completes.
    rig.containers.on_stop = lambda: os.symlink(secret, rig.data / "sub" / "leak")
    rig.request({"archive_paths": ["/app/data"]})
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.stage == "archive_build"
    assert rig.journal == ["stop", "start"]
    response = rig.response()
    assert "'/app/data/sub/leak'" in response["error"] and "TOP-SECRET" not in response["error"]
    assert str(tmp_path) not in json.dumps(rig.invalid())
    _assert_clean(rig)


def test_container_restarts_when_archive_root_was_replaced_by_a_link(rig: Rig, tmp_path) -> None:
    def swap() -> None:
        os.rename(rig.data / "sub", tmp_path / "moved")
        os.symlink(tmp_path / "moved", rig.data / "sub")

    rig.containers.on_stop = swap
    rig.request({"archive_paths": ["/app/data/sub"]})
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.stage == "archive_build"
    assert rig.journal == ["stop", "start"]


def test_archive_over_max_bytes_fails_archive_build(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, max_archive_bytes=100)
    (rig.data / "big").write_bytes(os.urandom(10_000))
    rig.request({"archive_paths": ["/app/data"]})
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.stage == "archive_build"
    assert "MAX_ARCHIVE_BYTES" in rig.response()["error"]
    assert rig.journal == ["stop", "start"]
    _assert_clean(rig)


def test_start_failure_after_capture_still_publishes(rig: Rig) -> None:
    rig.containers.fail_start = ContainerRuntimeError("start failed")
    rig.request({"archive_paths": ["/app/data"]})
    assert rig.publisher.publish_pending(NOW).status == "ok"  # type: ignore[union-attr]
    assert rig.journal == ["stop", "start", "put"]


# --- r1fs_upload and chainstore_publish ----------


def test_upload_failure_is_r1fs_upload_and_nothing_is_published(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, store_faults={"put": [StoreUnavailable("s3 down at 10.0.0.1")]})
    rig.request({"archive_paths": ["/app/data"]})
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.stage == "r1fs_upload"
    assert rig.journal == ["stop", "start", "put"]
    assert rig.registry.count("hset") == 0 and rig.history.entries() == []
    assert "10.0.0.1" not in rig.response()["error"]
    rig.store.assert_all_faults_fired()
    _assert_clean(rig)


def test_lost_ack_with_our_cid_on_reread_is_success(tmp_path: Path) -> None:
    registry = FaultyRegistry(
        MemoryRegistry(), {"hset": [Fault(RegistryUnavailable("lost"), after=True)]}
    )
    rig = make_rig(tmp_path, registry=registry)
    rig.request({"archive_paths": ["/app/data"]})
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.status == "ok"
    assert registry.count("hget") == 1
    assert rig.response()["chainstore_ack"] is True
    assert rig.history.entries()[0].data["chainstore_ack"] is False  # recorded as observed
    registry.assert_all_faults_fired()


def test_publish_failure_deletes_blob_and_writes_no_history(tmp_path: Path) -> None:
    registry = FaultyRegistry(MemoryRegistry(), {"hset": [RegistryUnavailable("down")]})
    rig = make_rig(tmp_path, registry=registry)
    rig.request({"archive_paths": ["/app/data"], "request_id": "q"})
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.stage == "chainstore_publish"
    assert registry.count("hget") == 1
    assert rig.store.inner.cids() == set()  # best-effort delete of the uploaded blob
    assert rig.store.count("delete") == 1
    assert rig.history.entries() == []
    assert rig.response()["stage"] == "chainstore_publish" and rig.response()["request_id"] == "q"
    _assert_clean(rig)


def test_publish_failure_when_registry_holds_another_cid(tmp_path: Path) -> None:
    inner = MemoryRegistry()
    inner.hset(C.CHAINSTORE_HKEY, "key-1", json.dumps({"cid": "bafkreiother"}))
    registry = FaultyRegistry(inner, {"hset": [RegistryUnavailable("down")]})
    rig = make_rig(tmp_path, registry=registry)
    rig.request({"archive_paths": ["/app/data"]})
    assert rig.publisher.publish_pending(NOW).stage == "chainstore_publish"  # type: ignore[union-attr]
    assert json.loads(inner.hget(C.CHAINSTORE_HKEY, "key-1") or "")["cid"] == "bafkreiother"


def test_publish_failure_survives_reread_failure_and_delete_failure(tmp_path: Path) -> None:
    registry = FaultyRegistry(
        MemoryRegistry(), {"hset": [RegistryUnavailable("a")], "hget": [RegistryUnavailable("b")]}
    )
    rig = make_rig(tmp_path, registry=registry, store_faults={"delete": [StoreUnavailable("c")]})
    rig.request({"archive_paths": ["/app/data"]})
    assert rig.publisher.publish_pending(NOW).stage == "chainstore_publish"  # type: ignore[union-attr]
    registry.assert_all_faults_fired()
    rig.store.assert_all_faults_fired()
    _assert_clean(rig)


def test_history_failure_after_commit_reports_ok_with_history_error(rig: Rig, mocker) -> None:
    mocker.patch.object(rig.history, "append", side_effect=OSError(28, "No space", "/host/secret"))
    rig.request({"archive_paths": ["/app/data"]})
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.status == "ok"
    response = rig.response()
    assert response["status"] == "ok" and "history_error" in response
    assert "/host/secret" not in response["history_error"]
    assert rig.record()["cid"] == response["cid"]


# --- retirement (SPEC §7.9) ----------


def _publish_version(rig: Rig, n: int) -> str:
    (rig.data / "a.txt").write_text(f"content {n}")
    rig.request({"archive_paths": ["/app/data"]})
    outcome = rig.publisher.publish_pending(NOW + n)
    assert outcome is not None and outcome.status == "ok" and outcome.cid
    return outcome.cid


def test_every_older_cid_is_retired_and_failures_are_retried(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, store_faults={"delete": [StoreUnavailable("flaky")]})
    first = _publish_version(rig, 1)
    assert rig.store.inner.cids() == {first}
    second = _publish_version(rig, 2)
    assert rig.store.inner.cids() == {first, second}  # the delete failed
    entries = {e.cid: e.data["deletion"] for e in rig.history.entries()}
    assert (
        entries[first]["deletion_succeeded"] is False
        and "flaky" in entries[first]["deletion_error"]
    )
    assert entries[second]["deletion_succeeded"] is None
    third = _publish_version(rig, 3)
    assert rig.store.inner.cids() == {third}  # first retried, second retired
    entries = {e.cid: e.data["deletion"] for e in rig.history.entries()}
    assert entries[first] == {
        "deleted_at": NOW + 3,
        "deletion_succeeded": True,
        "deletion_error": None,
    }
    assert entries[second]["deletion_succeeded"] is True
    assert entries[third]["deletion_succeeded"] is None


def test_republishing_same_content_never_deletes_the_current_blob(rig: Rig) -> None:
    a = _publish_version(rig, 1)
    rig.request({"archive_paths": ["/app/data"]})
    assert rig.publisher.publish_pending(NOW + 5).cid == a  # type: ignore[union-attr]
    assert rig.store.inner.cids() == {a}
    assert rig.store.count("delete") == 0


# --- online capture ----------


def _docker_tar() -> list[bytes]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        d = tarfile.TarInfo("data")
        d.type = tarfile.DIRTYPE
        tar.addfile(d)
        f = tarfile.TarInfo("data/live.txt")
        f.size = 4
        tar.addfile(f, io.BytesIO(b"live"))
    return [buf.getvalue()]


def test_online_capture_uses_get_archive_without_stopping(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, allow_online=True)
    rig.containers.archives["/app/data"] = _docker_tar()
    rig.request({"archive_paths": ["/app/data"], "runtime": {"provider_capture": "online"}})
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.status == "ok"
    assert rig.journal == ["get_archive /app/data", "put"]
    record = rig.record()
    assert record["runtime"]["provider_capture"] == "online"
    assert _archive_names(rig.store.inner.get(record["cid"])) == ["app/data", "app/data/live.txt"]
    assert rig.response()["downtime_seconds"] == 0.0


def test_online_capture_docker_failure_is_archive_build(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, allow_online=True)
    rig.request({"archive_paths": ["/app/data"], "runtime": {"provider_capture": "online"}})
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.stage == "archive_build"
    assert "stop" not in rig.journal and rig.store.count("put") == 0
    _assert_clean(rig)


# --- recovery (SPEC §5.5) ----------


def test_recover_requeues_an_unfinished_request_and_publishes_it(rig: Rig) -> None:
    (rig.control_dir / C.PROCESSING_FILE).write_text('{"archive_paths": ["/app/data"]}')
    rig.publisher.recover()
    assert rig.publisher.publish_pending(NOW).status == "ok"  # type: ignore[union-attr]


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
    names = _archive_names(blob)
    assert "app/data/db/rows.bin" in names and "app/extra/notes.txt" in names
    assert record.manifest.members == len(names)
    assert rig.journal == ["stop", "start", "put"]
    _assert_clean(rig)


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


def test_recover_removes_temp_archives_of_a_crashed_publish(rig: Rig) -> None:
    # A publish killed between archive and cleanup leaves its temp archive behind.
    rig.work.mkdir(parents=True, exist_ok=True)
    (rig.work / "snapshot-123.tar.zst").write_bytes(b"partial")
    (rig.work / "keep.txt").write_text("not ours")
    rig.request({"archive_paths": ["/app/data"]})
    (rig.control_dir / C.REQUEST_FILE).rename(rig.control_dir / C.PROCESSING_FILE)
    rig.publisher.recover()
    assert sorted(p.name for p in rig.work.iterdir()) == ["keep.txt"]
    assert (rig.control_dir / C.REQUEST_FILE).exists()  # the request is redone
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.status == "ok"
