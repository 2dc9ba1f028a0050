"""SnapshotCapture: stop only as long as the archive build, restart right after.

README, "Provider".
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from container_apps.errors import ContainerRuntimeError, SyncError
from container_apps.sync import constants as C
from container_apps.sync.capture import ArchiveSettings, SnapshotCapture
from container_apps.sync.paths import PathResolver
from container_apps.sync.records import SyncRequest
from container_apps.tests.support.fakes import FakeContainers
from container_apps.volumes.binding import VolumeBinding


def _capture(tmp_path: Path, containers: FakeContainers) -> SnapshotCapture:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("alpha")
    resolver = PathResolver([VolumeBinding("data", "fixed", data, "/app/data")])
    ticks = itertools.count(0.0, 0.5)  # each monotonic reading is 0.5 s later
    return SnapshotCapture(ArchiveSettings(), containers, resolver, monotonic=lambda: next(ticks))


def test_offline_capture_stops_builds_then_starts_and_measures_the_downtime(
    tmp_path: Path,
) -> None:
    dest = tmp_path / "out.tar.zst"
    archive_done_at_start: list[bool] = []

    class Containers(FakeContainers):
        def start(self) -> None:
            archive_done_at_start.append(dest.exists())  # complete, renamed into place
            super().start()

    containers = Containers()
    captured = _capture(tmp_path, containers).capture(
        SyncRequest(archive_paths=("/app/data",)), dest
    )
    assert containers.calls == ["stop", "start"]
    assert archive_done_at_start == [True]
    assert captured.info.members == 2 and (tmp_path / "out.tar.zst").exists()
    assert captured.downtime > 0 and captured.seconds >= captured.downtime


def test_failed_stop_is_runtime_stop_and_captures_nothing(tmp_path: Path) -> None:
    containers = FakeContainers()
    containers.fail_stop = ContainerRuntimeError("docker said no")
    with pytest.raises(SyncError) as caught:
        _capture(tmp_path, containers).capture(
            SyncRequest(archive_paths=("/app/data",)), tmp_path / "out.tar.zst"
        )
    assert caught.value.stage == C.STAGE_RUNTIME_STOP
    assert containers.calls == ["stop"]  # still running: no start needed, nothing built
    assert not (tmp_path / "out.tar.zst").exists()


def test_failed_build_still_restarts_the_app(tmp_path: Path) -> None:
    containers = FakeContainers()
    capture = _capture(tmp_path, containers)
    (tmp_path / "data" / "link").symlink_to("/etc/hostname")
    with pytest.raises(SyncError) as caught:
        capture.capture(SyncRequest(archive_paths=("/app/data",)), tmp_path / "out.tar.zst")
    assert caught.value.stage == C.STAGE_ARCHIVE_BUILD
    assert containers.calls == ["stop", "start"]


def test_online_capture_never_stops_the_app(tmp_path: Path) -> None:
    containers = FakeContainers()
    capture = _capture(tmp_path, containers)
    with pytest.raises(SyncError):  # the fake has no archive for the path
        capture.capture(
            SyncRequest(archive_paths=("/app/data",), provider_capture=C.CAPTURE_ONLINE),
            tmp_path / "out.tar.zst",
        )
    assert containers.calls == ["get_archive /app/data"]
