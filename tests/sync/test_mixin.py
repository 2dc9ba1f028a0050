"""_SyncMixin is wiring only: config and site reach the manager, calls are forwarded."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

from container_apps.layout import DataDir
from container_apps.runner.runner_config import RunnerConfig
from container_apps.sync.manager import SyncManager
from container_apps.sync.mixin import _SyncMixin
from container_apps.tests.support.fakes import FakeContainers
from container_apps.volumes.binding import VolumeBinding
from pytest_mock import MockerFixture


class _Runner(_SyncMixin):
    def __init__(self, tmp_path: Path) -> None:
        self.config = RunnerConfig.parse(
            {
                "INSTANCE_ID": "app",
                "IMAGE": "car-busybox:latest",
                "NODE_ID": "node-z",
                "SYNC": {"ENABLED": True, "KEY": "k", "TYPE": "consumer"},
                "STORAGE": {"BLOBS": "file:///tmp/blobs", "REGISTRY": None},
            }
        )
        self.paths = DataDir(tmp_path).instance("app")
        self.bindings = [VolumeBinding("v", "fixed", tmp_path, "/app/data")]
        self.system_volume_error = None
        self.log = logging.getLogger("test")
        self.control = FakeContainers()

    def _container_control(self) -> Any:
        return self.control


def test_setup_builds_the_manager_from_config_and_site_then_starts_it(
    tmp_path: Path, mocker: MockerFixture
) -> None:
    manager = MagicMock(spec=SyncManager)
    build = mocker.patch("container_apps.sync.mixin.build_sync_manager", return_value=manager)
    runner = _Runner(tmp_path)
    runner._sync_setup()
    cfg, site, control = build.call_args.args
    assert cfg is runner.config.sync
    assert site.node_id == "node-z"
    assert site.blobs_url == "file:///tmp/blobs"
    assert site.registry_url is None
    assert list(site.bindings) == runner.bindings
    assert control is runner.control
    manager.start.assert_called_once_with()


def test_ticks_and_start_gate_are_forwarded(tmp_path: Path, mocker: MockerFixture) -> None:
    manager = MagicMock(spec=SyncManager)
    manager.may_start.return_value = False
    mocker.patch("container_apps.sync.mixin.build_sync_manager", return_value=manager)
    runner = _Runner(tmp_path)
    runner._sync_setup()
    runner._sync_tick(12.5)
    manager.tick.assert_called_once_with(12.5)
    assert runner._sync_may_start() is False
    runner._sync_shutdown()
    manager.shutdown.assert_called_once_with()
    assert runner._sync is None


def test_before_setup_and_after_shutdown_nothing_is_forwarded(tmp_path: Path) -> None:
    runner = _Runner(tmp_path)
    assert runner._sync_may_start() is True
    runner._sync_tick(1.0)
    runner._sync_shutdown()
    assert runner._sync is None
