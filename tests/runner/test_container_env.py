"""The app's environment: ENV plus the runner's R1_* names, which ENV can never supply."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from container_apps.container_app_runner import ContainerAppRunnerPlugin
from container_apps.layout import DataDir
from container_apps.runner.runner_config import RunnerConfig
from container_apps.volumes.binding import VolumeBinding

FAKE_R1 = {"R1_SYNC_KEY": "fake", "R1_SYNC_TYPE": "provider", "R1_VOLUME_SYNC_DIR": "/x"}


def _runner(tmp_path: Path, mocker: Any, **raw: Any) -> ContainerAppRunnerPlugin:
    cfg = RunnerConfig.parse({"INSTANCE_ID": "a", "IMAGE": "img", **raw})
    return ContainerAppRunnerPlugin(cfg, DataDir(tmp_path), runtime=mocker.Mock())


def test_reserved_names_in_env_are_dropped_when_sync_is_off(tmp_path: Path, mocker: Any) -> None:
    runner = _runner(tmp_path, mocker, ENV={**FAKE_R1, "KEEP": "1"})
    runner.bindings = [VolumeBinding("r1en_system", "system", tmp_path, "/r1en_system")]
    env = runner._container_spec().env
    assert env["KEEP"] == "1"
    assert env["R1_VOLUME_SYNC_DIR"] == "/r1en_system/volume-sync"
    assert "R1_SYNC_KEY" not in env and "R1_SYNC_TYPE" not in env


def test_no_reserved_names_at_all_without_a_system_volume(tmp_path: Path, mocker: Any) -> None:
    runner = _runner(tmp_path, mocker, ENV={**FAKE_R1, "KEEP": "1"})
    runner.system_volume_error = "no loop device left"
    env = runner._container_spec().env
    assert {k for k in env if k.startswith("R1_")} == set()
    assert env["KEEP"] == "1"
