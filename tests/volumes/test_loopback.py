"""volumes/loopback.py on real loop ext4 volumes (README, "Volumes")."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path

import pytest
from container_apps.errors import VolumeError
from container_apps.layout import DataDir
from container_apps.tests.support.fixtures_loop import MakeLoopVolume
from container_apps.volumes import hosttools
from container_apps.volumes.loopback import sweep_stale_mounts, volumes_in_use
from pytest_mock import MockerFixture

from .conftest import LOG, fs_type, fs_uuid, mounts_at, release_instance, run_args, tools_called

pytestmark = pytest.mark.loopdev
MIB = 1024**2


def write(path: Path, text: str) -> int:
    path.write_text(text)
    return path.stat().st_ino


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def test_fresh_volume_is_mounted_ext4_of_size_owned_and_empty(
    make_loop_volume: MakeLoopVolume, caplog: pytest.LogCaptureFixture
) -> None:
    vol = make_loop_volume("data", "16M", owner=(1234, 4321))
    with caplog.at_level(logging.INFO, logger="test.loop"):
        vol.provision()
    actions = [r.getMessage().split(": ", 1)[1].split(" ")[0] for r in caplog.records]
    assert actions == ["created", "attached", "mounted", "root", "removed"]
    assert vol.is_mounted
    assert vol.device is not None and vol.device.startswith("/dev/loop")
    assert fs_type(vol.image_path) == "ext4"
    assert vol.image_path.stat().st_size == 16 * MIB
    assert list(vol.mount_point.iterdir()) == []  # lost+found removed
    st = vol.mount_point.stat()
    assert (st.st_uid, st.st_gid) == (1234, 4321)
    meta = json.loads(vol.meta_path.read_text())
    assert meta["loop_device"] == vol.device
    assert (meta["size_bytes"], meta["fs_type"], meta["owner"]) == (16 * MIB, "ext4", [1234, 4321])
    assert (meta["image"], meta["mount_point"]) == (str(vol.image_path), str(vol.mount_point))


def test_mount_is_nodev_nosuid(make_loop_volume: MakeLoopVolume) -> None:
    vol = make_loop_volume()
    vol.provision()
    flags = os.statvfs(vol.mount_point).f_flag
    assert flags & os.ST_NODEV and flags & os.ST_NOSUID


def test_owner_defaults_to_root(make_loop_volume: MakeLoopVolume) -> None:
    vol = make_loop_volume()
    vol.provision()
    st = vol.mount_point.stat()
    assert (st.st_uid, st.st_gid) == (0, 0)


def test_release_then_provision_keeps_data_and_does_not_reformat(
    make_loop_volume: MakeLoopVolume, mocker: MockerFixture
) -> None:
    vol = make_loop_volume()
    vol.provision()
    inode = write(vol.mount_point / "keep.txt", "precious")
    uuid = fs_uuid(vol.image_path)
    vol.release()
    assert not vol.is_mounted and vol.device is None
    assert vol.image_path.exists()

    spy = mocker.spy(hosttools, "run")
    vol.provision()
    assert (vol.mount_point / "keep.txt").read_text() == "precious"
    assert (vol.mount_point / "keep.txt").stat().st_ino == inode
    assert fs_uuid(vol.image_path) == uuid
    assert "mount" in tools_called(spy)  # it did remount, through the spied runner
    assert not {"mkfs.ext4", "fallocate", "resize2fs"} & set(tools_called(spy))


def test_provision_twice_reuses_device_and_mount(
    make_loop_volume: MakeLoopVolume, mocker: MockerFixture
) -> None:
    vol = make_loop_volume()
    vol.provision()
    device = vol.device
    write(vol.mount_point / "f", "x")

    spy = mocker.spy(hosttools, "run")
    vol.provision()
    assert vol.device == device
    assert hosttools.devices_for(vol.image_path) == [device]
    assert mounts_at(vol.mount_point) == 1
    assert not {"mount", "mkfs.ext4", "fallocate"} & set(tools_called(spy))
    assert ["losetup", "--find", "--show", str(vol.image_path)] not in run_args(spy)
    assert (vol.mount_point / "f").read_text() == "x"


def test_attached_but_unmounted_device_is_reused(
    make_loop_volume: MakeLoopVolume, mocker: MockerFixture
) -> None:
    vol = make_loop_volume()
    vol.provision()
    device = vol.device
    subprocess.run(["umount", str(vol.mount_point)], check=True)  # a crash between the steps

    spy = mocker.spy(hosttools, "run")
    vol.provision()
    assert vol.is_mounted and vol.device == device
    assert hosttools.devices_for(vol.image_path) == [device]
    assert ["losetup", "--find", "--show", str(vol.image_path)] not in run_args(spy)


def test_larger_size_grows_while_mounted_and_keeps_data(make_loop_volume: MakeLoopVolume) -> None:
    small = make_loop_volume("data", "16M")
    small.provision()
    write(small.mount_point / "keep.txt", "before grow")
    uuid, free_before = fs_uuid(small.image_path), free_bytes(small.mount_point)

    big = make_loop_volume("data", "32M")  # same paths, larger SIZE, still mounted
    big.provision()
    assert big.image_path.stat().st_size == 32 * MIB
    assert free_bytes(big.mount_point) >= free_before + 14 * MIB
    assert (big.mount_point / "keep.txt").read_text() == "before grow"
    assert fs_uuid(big.image_path) == uuid
    assert json.loads(big.meta_path.read_text())["size_bytes"] == 32 * MIB


def test_interrupted_grow_is_finished_on_next_provision(make_loop_volume: MakeLoopVolume) -> None:
    vol = make_loop_volume("data", "16M")
    vol.provision()
    write(vol.mount_point / "keep.txt", "x")
    vol.release()
    # The crash came after fallocate and before resize2fs: image 32M, filesystem 16M.
    subprocess.run(["fallocate", "-l", str(32 * MIB), str(vol.image_path)], check=True)

    again = make_loop_volume("data", "32M")
    again.provision()
    assert free_bytes(again.mount_point) > 24 * MIB
    assert (again.mount_point / "keep.txt").read_text() == "x"


def test_smaller_size_is_refused_and_data_untouched(
    make_loop_volume: MakeLoopVolume, mocker: MockerFixture
) -> None:
    vol = make_loop_volume("data", "16M")
    vol.provision()
    write(vol.mount_point / "keep.txt", "safe")
    uuid = fs_uuid(vol.image_path)

    spy = mocker.spy(hosttools, "run")
    with pytest.raises(VolumeError) as info:
        make_loop_volume("data", "8M").provision()
    err = info.value
    assert "SIZE 8M is smaller than the existing image (16M)" in err.message
    assert err.image == str(vol.image_path)
    assert "at least 16M" in (err.hint or "")
    assert not {"mkfs.ext4", "fallocate", "resize2fs", "e2fsck"} & set(tools_called(spy))
    assert vol.image_path.stat().st_size == 16 * MIB
    assert not vol.is_mounted  # a failed provision leaves nothing mounted

    vol.provision()
    assert fs_uuid(vol.image_path) == uuid
    assert (vol.mount_point / "keep.txt").read_text() == "safe"


def test_force_recreate_reformats_and_wipes(make_loop_volume: MakeLoopVolume) -> None:
    vol = make_loop_volume("data", "16M")
    vol.provision()
    write(vol.mount_point / "old.txt", "gone soon")
    uuid = fs_uuid(vol.image_path)

    fresh = make_loop_volume("data", "16M", force_recreate=True)
    fresh.provision()
    assert fresh.is_mounted
    assert fs_uuid(fresh.image_path) != uuid
    assert list(fresh.mount_point.iterdir()) == []


def test_image_without_filesystem_is_formatted(make_loop_volume: MakeLoopVolume) -> None:
    vol = make_loop_volume("data", "16M")
    vol.image_path.parent.mkdir(parents=True)
    vol.image_path.write_bytes(b"\0" * MIB)  # e.g. a crash between fallocate and mkfs
    vol.provision()
    assert fs_type(vol.image_path) == "ext4"
    assert vol.image_path.stat().st_size == 16 * MIB


def test_image_with_another_filesystem_is_refused_not_reformatted(
    make_loop_volume: MakeLoopVolume,
) -> None:
    vol = make_loop_volume("data", "16M")
    vol.image_path.parent.mkdir(parents=True)
    subprocess.run(["fallocate", "-l", str(16 * MIB), str(vol.image_path)], check=True)
    subprocess.run(["mkfs.ext2", "-q", "-F", str(vol.image_path)], check=True)
    uuid = fs_uuid(vol.image_path)
    with pytest.raises(VolumeError) as info:
        vol.provision()
    assert "image holds an ext2 filesystem, expected ext4" in info.value.message
    assert "FORCE_RECREATE" in (info.value.hint or "")
    assert fs_uuid(vol.image_path) == uuid
    assert vol.device is None


def fail_tool(mocker: MockerFixture, tool: str) -> None:
    """Make every ``tool`` run fail like the real tool would; other tools run for real."""
    real_run = hosttools.run

    def run(args: list[str], **kwargs: object) -> object:
        if args[0] == tool:
            raise VolumeError(f"{tool} failed (exit 8): simulated", image=str(args[-1]))
        return real_run(args, **kwargs)  # type: ignore[arg-type]

    mocker.patch.object(hosttools, "run", side_effect=run)


def test_failed_mount_detaches_the_device_and_keeps_the_image(
    make_loop_volume: MakeLoopVolume, mocker: MockerFixture
) -> None:
    vol = make_loop_volume()
    fail_tool(mocker, "mount")
    with pytest.raises(VolumeError) as info:
        vol.provision()
    assert "simulated" in info.value.message
    mocker.stopall()
    assert vol.device is None and not vol.is_mounted
    assert fs_type(vol.image_path) == "ext4"


def test_failed_mkfs_leaves_no_half_made_image(
    make_loop_volume: MakeLoopVolume, mocker: MockerFixture
) -> None:
    vol = make_loop_volume()
    fail_tool(mocker, "mkfs.ext4")
    with pytest.raises(VolumeError) as info:
        vol.provision()
    assert info.value.message == "mkfs.ext4 failed (exit 8): simulated"
    assert not vol.image_path.exists()


def test_failed_fsck_during_grow_keeps_data_and_size(
    make_loop_volume: MakeLoopVolume, mocker: MockerFixture
) -> None:
    vol = make_loop_volume("data", "16M")
    vol.provision()
    write(vol.mount_point / "keep.txt", "safe")
    uuid = fs_uuid(vol.image_path)
    fail_tool(mocker, "e2fsck")
    with pytest.raises(VolumeError):
        make_loop_volume("data", "32M").provision()
    mocker.stopall()
    assert not vol.is_mounted and vol.device is None  # a failed provision leaks nothing
    retry = make_loop_volume("data", "32M")  # the same config again finishes the grow
    retry.provision()
    assert free_bytes(retry.mount_point) > 24 * MIB
    assert fs_uuid(retry.image_path) == uuid
    assert (retry.mount_point / "keep.txt").read_text() == "safe"


def test_release_and_destroy_are_idempotent(make_loop_volume: MakeLoopVolume) -> None:
    vol = make_loop_volume()
    vol.release()  # never provisioned
    vol.destroy()
    vol.provision()
    vol.release()
    vol.release()
    vol.destroy()
    vol.destroy()
    assert not vol.image_path.exists() and not vol.meta_path.exists()
    assert not vol.mount_point.exists()


def test_release_detaches_device_of_deleted_image(make_loop_volume: MakeLoopVolume) -> None:
    vol = make_loop_volume()
    vol.provision()
    device = vol.device
    vol.image_path.unlink()  # attached but deleted: losetup -j no longer finds it
    vol.release()
    assert device not in [d.name for d in hosttools.loop_devices()]


def test_busy_mount_release_is_a_volume_error_with_hint(make_loop_volume: MakeLoopVolume) -> None:
    vol = make_loop_volume()
    vol.provision()
    with open(vol.mount_point / "open.txt", "w") as handle:
        handle.write("busy")
        with pytest.raises(VolumeError) as info:
            vol.release()
    assert "umount" in info.value.message
    assert "container stopped" in (info.value.hint or "")
    vol.release()
    assert not vol.is_mounted


def test_sweep_cleans_this_instances_leftovers_only(
    make_loop_volume: MakeLoopVolume, data_dir: DataDir
) -> None:
    mine, other = data_dir.instance("app1"), data_dir.instance("app10")  # prefix trap
    try:
        stale = make_loop_volume("stale", paths=mine)
        kept = make_loop_volume("kept", paths=mine)
        system = make_loop_volume("r1en_system", "8M", paths=mine)
        attached = make_loop_volume("attached", paths=mine)
        foreign = make_loop_volume("stale", paths=other)
        for vol in (stale, kept, system, attached, foreign):
            vol.provision()
        subprocess.run(["umount", str(attached.mount_point)], check=True)  # loop only

        swept = sweep_stale_mounts(mine.fixed_volumes, {"kept"}, LOG)

        assert swept == ["attached", "stale"]
        assert not stale.is_mounted and stale.device is None
        assert attached.device is None
        assert kept.is_mounted and system.is_mounted and foreign.is_mounted
        assert stale.image_path.exists()  # sweeping never deletes data
        assert set(volumes_in_use(mine.fixed_volumes)) == {"kept", "r1en_system"}
        assert set(volumes_in_use(other.fixed_volumes)) == {"stale"}
    finally:
        release_instance(mine)
        release_instance(other)


def test_sweep_of_a_missing_dir_finds_nothing(loop_root: Path) -> None:
    assert sweep_stale_mounts(loop_root / "nope" / "fixed_volumes", set(), LOG) == []
