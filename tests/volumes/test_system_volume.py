"""volumes/system_volume.py: /r1en_system modes, volume-sync hardening, env vars."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from container_apps.errors import VolumeError
from container_apps.layout import DataDir, InstancePaths
from container_apps.sync.config import SyncConfig
from container_apps.sync.container_env import system_env
from container_apps.volumes import system_volume as sysvol
from container_apps.volumes.system_volume import provision_system_volume
from pytest_mock import MockerFixture

from .conftest import LOG, fs_type

MIB = 1024**2


@pytest.fixture
def system_paths(instance_paths: InstancePaths) -> Iterator[InstancePaths]:
    yield instance_paths
    sysvol.system_volume(instance_paths, LOG).destroy()


def mode_owner(path: Path) -> tuple[int, int, int, bool]:
    st = os.lstat(path)
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, stat.S_ISDIR(st.st_mode)


@pytest.mark.loopdev
def test_system_volume_is_10m_ext4_with_exact_modes(system_paths: InstancePaths) -> None:
    binding = provision_system_volume(system_paths, LOG)
    assert (binding.name, binding.kind, binding.container_path, binding.read_only) == (
        "r1en_system",
        "system",
        "/r1en_system",
        False,
    )
    assert binding.host_root == system_paths.system_mount
    assert not binding.syncable
    image = system_paths.volume_image("r1en_system")
    assert image.stat().st_size == 10 * MIB and fs_type(image) == "ext4"
    assert os.path.ismount(system_paths.system_mount)
    assert mode_owner(system_paths.system_mount) == (0o755, 0, 0, True)
    assert mode_owner(system_paths.volume_sync_dir) == (0o1777, 0, 0, True)
    assert sorted(os.listdir(system_paths.system_mount)) == ["volume-sync"]


@pytest.mark.loopdev
def test_symlinked_volume_sync_is_replaced_without_following(
    system_paths: InstancePaths, tmp_path: Path
) -> None:
    provision_system_volume(system_paths, LOG)
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o700)
    (outside / "secret").write_text("host data")
    os.rmdir(system_paths.volume_sync_dir)
    os.symlink(outside, system_paths.volume_sync_dir)  # what a hostile app could plant

    provision_system_volume(system_paths, LOG)
    assert mode_owner(system_paths.volume_sync_dir) == (0o1777, 0, 0, True)
    assert mode_owner(outside) == (0o700, 0, 0, True)  # the target was not chmod'ed
    assert (outside / "secret").read_text() == "host data"
    assert os.listdir(system_paths.volume_sync_dir) == []


@pytest.mark.loopdev
def test_file_at_volume_sync_is_replaced_and_root_mode_restored(
    system_paths: InstancePaths,
) -> None:
    provision_system_volume(system_paths, LOG)
    os.rmdir(system_paths.volume_sync_dir)
    system_paths.volume_sync_dir.write_text("not a dir")
    os.chmod(system_paths.system_mount, 0o777)
    os.chown(system_paths.system_mount, 1000, 1000)

    provision_system_volume(system_paths, LOG)
    assert mode_owner(system_paths.system_mount) == (0o755, 0, 0, True)
    assert mode_owner(system_paths.volume_sync_dir) == (0o1777, 0, 0, True)


@pytest.mark.loopdev
def test_existing_volume_sync_content_is_kept(system_paths: InstancePaths) -> None:
    provision_system_volume(system_paths, LOG)
    (system_paths.volume_sync_dir / "response.json").write_text("{}")
    os.chmod(system_paths.volume_sync_dir, 0o700)
    provision_system_volume(system_paths, LOG)
    assert (system_paths.volume_sync_dir / "response.json").read_text() == "{}"
    assert mode_owner(system_paths.volume_sync_dir)[0] == 0o1777


@pytest.mark.loopdev
def test_failure_setting_modes_releases_the_volume(
    system_paths: InstancePaths, mocker: MockerFixture
) -> None:
    real_fchmod = os.fchmod

    def deny_on_directories(fd: int, mode: int) -> None:
        # Only volume-sync/'s chmod fails: the atomic writes (fsutil) fchmod files too.
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise PermissionError(1, "denied")
        real_fchmod(fd, mode)

    mocker.patch.object(sysvol.os, "fchmod", side_effect=deny_on_directories)
    with pytest.raises(VolumeError) as info:
        provision_system_volume(system_paths, LOG)
    assert "cannot prepare" in info.value.message and "denied" in info.value.message
    assert not os.path.ismount(system_paths.system_mount)
    assert sysvol.system_volume(system_paths, LOG).device is None


def test_loop_failure_is_raised_as_volume_error(tmp_path: Path, mocker: MockerFixture) -> None:
    fake = mocker.patch.object(sysvol, "LoopbackVolume", autospec=True)
    fake.return_value.provision.side_effect = VolumeError("losetup failed", image="x.img")
    paths = DataDir(tmp_path).instance("a")
    with pytest.raises(VolumeError) as info:
        provision_system_volume(paths, LOG)
    assert info.value.message == "losetup failed"


def test_system_env_without_sync_has_the_three_paths_only() -> None:
    assert system_env(SyncConfig.parse(None)) == {
        "R1_SYSTEM_VOLUME": "/r1en_system",
        "R1_VOLUME_SYNC_DIR": "/r1en_system/volume-sync",
        "R1_SYNC_REQUEST_FILE": "/r1en_system/volume-sync/request.json",
    }


def test_system_env_with_sync_adds_type_and_key() -> None:
    cfg = SyncConfig.parse({"ENABLED": True, "KEY": "k1", "TYPE": "consumer"})
    env = system_env(cfg)
    assert env["R1_SYNC_TYPE"] == "consumer" and env["R1_SYNC_KEY"] == "k1"
    assert env["R1_SYSTEM_VOLUME"] == "/r1en_system" and len(env) == 5


def test_system_env_with_sync_disabled_but_key_set_omits_sync_vars() -> None:
    cfg = SyncConfig.parse({"ENABLED": False, "KEY": "k1", "TYPE": "provider"})
    assert "R1_SYNC_KEY" not in system_env(cfg) and "R1_SYNC_TYPE" not in system_env(cfg)
