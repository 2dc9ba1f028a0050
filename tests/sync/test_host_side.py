"""Host-side parts of a runner (README, "Snapshots, restore and host-side publish"):
request channels, the schedule, the pin, the restore desk, the answer while sync is
off and the "no record yet" line. Real files in tmp_path; the end-to-end flows are in
tests/integration/test_host_ops.py.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from container_apps.layout import DataDir
from container_apps.registries.memory import MemoryRegistry
from container_apps.stores.memory import MemoryBlobStore
from container_apps.sync import constants as C
from container_apps.sync.config import SyncConfig
from container_apps.sync.control_files import ControlDir
from container_apps.sync.kept_records import KEPT_HKEY
from container_apps.sync.manager import SyncSite, build_sync_manager
from container_apps.sync.pin import Pin, PinnedRecordSource, load_pin, save_pin
from container_apps.sync.record_source import RecordSource
from container_apps.sync.request_channels import RequestChannels
from container_apps.sync.restore import RestoreDesk
from container_apps.sync.schedule import SnapshotSchedule
from container_apps.tests.support.fakes import FakeContainers
from container_apps.volumes.binding import VolumeBinding

LOG = logging.getLogger("test-host-side")


def _messages(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


def test_a_request_written_while_sync_is_off_gets_an_error_answer_and_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    paths = DataDir(tmp_path / "data").instance("app")
    paths.ensure()
    paths.volume_sync_dir.mkdir(parents=True)
    site = SyncSite(paths=paths, bindings=[], node_id="node-a")
    manager = build_sync_manager(SyncConfig.parse(None), site, FakeContainers(), log=LOG)
    (paths.volume_sync_dir / C.REQUEST_FILE).write_text('{"archive_paths": ["/app/data"]}')
    with caplog.at_level(logging.INFO):
        manager.tick(0.0)
        manager.tick(100.0)
    answer = json.loads((paths.volume_sync_dir / C.RESPONSE_FILE).read_text())
    assert answer["status"] == "error"
    assert answer["error"] == "volume-sync is disabled on this runner: SYNC.ENABLED is false"
    assert answer["archive_paths"] == ["/app/data"]
    assert not (paths.volume_sync_dir / C.REQUEST_FILE).exists()
    assert len(_messages(caplog, "volume-sync is disabled on this runner")) == 1


def test_a_key_nobody_publishes_logs_once_and_once_more_when_a_record_appears(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = MemoryRegistry()
    source = RecordSource(registry, "k", 60, LOG)
    with caplog.at_level(logging.INFO):
        for t in range(5):
            assert source.read(float(t)) is None
        registry.hset(C.CHAINSTORE_HKEY, "k", '{"cid": "x"}')
        for t in range(5, 8):
            assert source.read(float(t)) is not None
    assert _messages(caplog, "no record for k yet") == ["no record for k yet"]
    assert _messages(caplog, "a record for k appeared") == ["a record for k appeared"]


def test_schedule_waits_while_a_request_is_in_progress(tmp_path: Path) -> None:
    host, app = tmp_path / "host", tmp_path / "app"
    app.mkdir()
    schedule = SnapshotSchedule(10, host, app, LOG)
    assert not schedule.tick(0.0)  # first snapshot one interval after the start
    (app / C.PROCESSING_FILE).write_text("{}")
    assert not schedule.tick(10.0)
    assert not (host / C.REQUEST_FILE).exists()
    (app / C.PROCESSING_FILE).unlink()
    assert schedule.tick(11.0)
    body = json.loads((host / C.REQUEST_FILE).read_text())
    assert body["request_id"].startswith("schedule-") and "archive_paths" not in body
    assert not schedule.tick(12.0)  # its own request is pending
    (host / C.REQUEST_FILE).unlink()
    assert not schedule.tick(20.0)  # next one due at 21
    assert schedule.tick(21.0)


def test_channels_claim_the_apps_request_first_and_answer_where_it_came_from(
    tmp_path: Path,
) -> None:
    app_dir, host_dir = tmp_path / "app", tmp_path / "host"
    app_dir.mkdir()
    host_dir.mkdir()
    channels = RequestChannels(
        ControlDir(app_dir, "n"), ControlDir(host_dir, "n"), lambda: ["/app/data"], LOG
    )
    (app_dir / C.REQUEST_FILE).write_text('{"archive_paths": ["/a"], "request_id": "app"}')
    (host_dir / C.REQUEST_FILE).write_text('{"request_id": "host-1"}')
    first = channels.claim()
    assert first is not None and first.request_id == "app"
    channels.succeed({"cid": "c1"})
    second = channels.claim()
    assert second is not None and second.request_id == "host-1"
    assert second.body["archive_paths"] == ["/app/data"]  # the default paths
    channels.fail_claimed(second, C.STAGE_VALIDATION, "nope")
    assert json.loads((app_dir / C.RESPONSE_FILE).read_text())["cid"] == "c1"
    host_answer = json.loads((host_dir / C.RESPONSE_FILE).read_text())
    assert host_answer["error"] == "nope" and host_answer["request_id"] == "host-1"
    assert channels.claim() is None


def test_a_pin_replaces_the_registry_record_until_it_is_removed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = MemoryRegistry()
    registry.hset(C.CHAINSTORE_HKEY, "k", '{"cid": "new"}')
    source = PinnedRecordSource(registry, "k", 60, LOG, tmp_path)
    save_pin(tmp_path, Pin("old", {"cid": "old", "version": 1}, 5.0))
    with caplog.at_level(logging.INFO):
        assert [json.loads(source.read(float(t)) or "")["cid"] for t in range(3)] == ["old"] * 3
        (tmp_path / "pin.json").unlink()
        assert json.loads(source.read(4.0) or "")["cid"] == "new"
    assert len(_messages(caplog, "volume-sync pinned to old")) == 1
    assert len(_messages(caplog, "volume-sync unpinned")) == 1


def test_restore_of_a_cid_not_kept_is_refused_and_pins_nothing(tmp_path: Path) -> None:
    registry = MemoryRegistry()
    kept = {"schema_version": 1, "key": "k", "records": [{"cid": "bafkreikept"}]}
    registry.hset(KEPT_HKEY, "k", json.dumps(kept))
    store = MemoryBlobStore(tmp_path / "cache")
    host = tmp_path / "host"
    host.mkdir()
    desk = RestoreDesk(host, tmp_path, "k", registry, store, LOG)
    errors = []
    for cid in ("bafkreinosuch", "bafkreikept"):  # unknown; kept but its record is broken
        (host / "restore.json").write_text(json.dumps({"cid": cid, "request_id": cid}))
        desk.tick(1.0)
        answer = json.loads((host / "restore-response.json").read_text())
        assert answer["status"] == "error" and answer["request_id"] == cid
        assert load_pin(tmp_path) is None
        errors.append(answer["error"])
    assert errors[0].startswith("bafkreinosuch is not a kept snapshot of key 'k'")
    assert errors[1].startswith("the kept record of bafkreikept is not valid")


def test_provider_manager_reads_host_requests_with_default_paths(tmp_path: Path) -> None:
    paths = DataDir(tmp_path / "data").instance("app")
    paths.ensure()
    paths.volume_sync_dir.mkdir(parents=True)
    mount = paths.volume_mount("vol")
    mount.mkdir(parents=True)
    site = SyncSite(
        paths=paths,
        bindings=[VolumeBinding("vol", "fixed", mount, "/app/data")],
        node_id="node-a",
    )
    cfg = SyncConfig.parse({"ENABLED": True, "KEY": "k", "TYPE": "provider", "SCHEDULE": 5})
    manager = build_sync_manager(cfg, site, FakeContainers(), log=LOG)
    assert manager.host.schedule is not None and manager.host.schedule.interval == 5
    assert (paths.sync_state / "host-requests").is_dir()
