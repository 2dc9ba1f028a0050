"""Helpers shared by the volume tests: instance paths that clean up after themselves."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from container_apps.layout import DataDir, InstancePaths
from container_apps.volumes import hosttools
from container_apps.volumes.provisioner import VolumeProvisioner

LOG = logging.getLogger("test.volumes")


def release_instance(paths: InstancePaths) -> None:
    """Unmount/detach everything of one instance (config-free provisioner)."""
    VolumeProvisioner(paths, fixed={}, legacy={}, files={}, default_owner=None, log=LOG).release()


@pytest.fixture
def data_dir(loop_root: Path) -> DataDir:
    return DataDir(loop_root / "data")


@pytest.fixture
def instance_paths(data_dir: DataDir) -> Iterator[InstancePaths]:
    """InstancePaths of instance "app1"; every volume under it is released afterwards."""
    paths = data_dir.instance("app1")
    yield paths
    release_instance(paths)


def fs_uuid(image: Path) -> str:
    """The filesystem UUID (mkfs makes a new one, so it proves "not reformatted")."""
    out = subprocess.run(
        ["blkid", "-p", "-o", "value", "-s", "UUID", str(image)],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def fs_type(image: Path) -> str:
    out = subprocess.run(
        ["blkid", "-p", "-o", "value", "-s", "TYPE", str(image)],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip()


def mounts_at(path: Path) -> int:
    """How many mounts sit exactly at ``path`` (stacked mounts count twice)."""
    target = path.resolve()
    return sum(1 for m in hosttools.mounts() if m.target == target)


def tools_called(spy: object) -> list[str]:
    """First argv element of every hosttools.run call a mocker.spy recorded."""
    return [call.args[0][0] for call in spy.call_args_list]  # type: ignore[attr-defined]


def run_args(spy: object) -> list[list[str]]:
    return [list(call.args[0]) for call in spy.call_args_list]  # type: ignore[attr-defined]
