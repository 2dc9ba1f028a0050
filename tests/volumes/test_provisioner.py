"""volumes/provisioner.py: order, bindings, failure cleanup and release (README, "Volumes")."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

import pytest
from container_apps.errors import VolumeError
from container_apps.layout import InstancePaths
from container_apps.volumes import hosttools
from container_apps.volumes import system_volume as sysvol
from container_apps.volumes.loopback import volumes_in_use
from container_apps.volumes.provisioner import VolumeProvisioner
from container_apps.volumes.specs import FileVolumeSpec, FixedVolumeSpec
from pytest_mock import MockerFixture

from .conftest import LOG

pytestmark = pytest.mark.loopdev


def fixed(size: str = "16M", mp: str = "/data", **kw: object) -> FixedVolumeSpec:
    return FixedVolumeSpec(size=size, mounting_point=mp, **kw)  # type: ignore[arg-type]


def provisioner(
    paths: InstancePaths,
    *,
    fixed: Mapping[str, FixedVolumeSpec] | None = None,
    legacy: Mapping[str, str] | None = None,
    files: Mapping[str, FileVolumeSpec] | None = None,
    default_owner: tuple[int, int] | None = None,
) -> VolumeProvisioner:
    return VolumeProvisioner(
        paths,
        fixed=fixed or {},
        legacy=legacy or {},
        files=files or {},
        default_owner=default_owner,
        log=LOG,
    )


def owner(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_uid, st.st_gid


def test_provision_binds_all_kinds_in_spec_order(instance_paths: InstancePaths) -> None:
    prov = provisioner(
        instance_paths,
        legacy={"cache": "/cache/"},
        files={"cfg": FileVolumeSpec(content="a=1\n", mounting_point="/etc/app.conf")},
        fixed={"data": fixed(), "logs": fixed(mp="/logs", owner_uid=7, owner_gid=8)},
        default_owner=(1000, 1001),
    )
    result = prov.provision()

    assert result.system_volume_error is None
    assert [(b.name, b.kind, b.container_path, b.read_only) for b in result.bindings] == [
        ("cache", "legacy", "/cache", False),
        ("cfg", "file", "/etc/app.conf", True),
        ("data", "fixed", "/data", False),
        ("logs", "fixed", "/logs", False),
        ("r1en_system", "system", "/r1en_system", False),
    ]
    cache, cfg, data, logs, system = (b.host_root for b in result.bindings)
    assert cache == instance_paths.legacy_volume("cache") and cache.is_dir()
    assert owner(cache) == (1000, 1001)  # a new legacy dir belongs to the image USER
    assert cfg.read_text() == "a=1\n" and stat.S_IMODE(cfg.stat().st_mode) == 0o644
    assert os.path.ismount(data) and owner(data) == (1000, 1001)  # image USER
    assert os.path.ismount(logs) and owner(logs) == (7, 8)  # OWNER_UID/GID win
    assert system == instance_paths.system_mount and os.path.ismount(system)

    prov.release()
    assert volumes_in_use(instance_paths.fixed_volumes) == {}
    assert not os.path.ismount(data) and not os.path.ismount(system)


def test_owner_falls_back_per_field_then_to_root(instance_paths: InstancePaths) -> None:
    prov = provisioner(
        instance_paths, fixed={"a": fixed(owner_uid=5), "b": fixed(mp="/b")}, default_owner=None
    )
    prov.provision()
    assert owner(instance_paths.volume_mount("a")) == (5, 0)
    assert owner(instance_paths.volume_mount("b")) == (0, 0)


def test_system_volume_failure_is_reported_and_data_volumes_stay(
    instance_paths: InstancePaths, mocker: MockerFixture
) -> None:
    fake = mocker.patch.object(sysvol, "LoopbackVolume", autospec=True)
    fake.return_value.provision.side_effect = VolumeError(
        "losetup --find failed (exit 1): no free loop device", hint="free a loop device"
    )
    result = provisioner(instance_paths, fixed={"data": fixed()}).provision()

    assert result.system_volume_error == (
        "losetup --find failed (exit 1): no free loop device (free a loop device)"
    )
    assert [b.kind for b in result.bindings] == ["fixed"]
    assert os.path.ismount(instance_paths.volume_mount("data"))


def test_fixed_volume_failure_names_it_and_releases_earlier_ones(
    instance_paths: InstancePaths,
) -> None:
    provisioner(instance_paths, fixed={"bad": fixed("16M")}).provision()
    provisioner(instance_paths).release()

    prov = provisioner(instance_paths, fixed={"good": fixed(), "bad": fixed("8M", mp="/bad")})
    with pytest.raises(VolumeError) as info:
        prov.provision()
    err = info.value
    assert err.message.startswith("fixed-size volume 'bad': volume bad: SIZE 8M is smaller")
    assert err.image == str(instance_paths.volume_image("bad"))
    assert "at least 16M" in (err.hint or "")
    # Nothing leaks: the good volume this call mounted is released; no system volume.
    assert volumes_in_use(instance_paths.fixed_volumes) == {}
    assert instance_paths.volume_image("good").exists()  # released, never deleted


def test_stale_volume_of_crashed_run_is_swept_and_current_ones_reused(
    instance_paths: InstancePaths,
) -> None:
    provisioner(instance_paths, fixed={"old": fixed(mp="/old"), "data": fixed()}).provision()
    data_device = hosttools.devices_for(instance_paths.volume_image("data"))
    system_device = hosttools.devices_for(instance_paths.volume_image("r1en_system"))
    (instance_paths.volume_mount("data") / "keep").write_text("kept")
    # no release: the runner crashed; the new config no longer has "old"

    provisioner(instance_paths, fixed={"data": fixed()}).provision()
    in_use = volumes_in_use(instance_paths.fixed_volumes)
    assert set(in_use) == {"data", "r1en_system"}
    assert hosttools.devices_for(instance_paths.volume_image("data")) == data_device
    assert hosttools.devices_for(instance_paths.volume_image("r1en_system")) == system_device
    assert (instance_paths.volume_mount("data") / "keep").read_text() == "kept"


def test_release_covers_volumes_known_only_from_meta_or_kernel(
    instance_paths: InstancePaths,
) -> None:
    provisioner(instance_paths, fixed={"x": fixed(), "y": fixed(mp="/y")}).provision()
    instance_paths.volume_meta("y").unlink()  # only the kernel still knows "y"

    provisioner(instance_paths).release()  # a provisioner with no config at all
    assert volumes_in_use(instance_paths.fixed_volumes) == {}


def test_release_is_best_effort_and_lists_failures(instance_paths: InstancePaths) -> None:
    prov = provisioner(instance_paths, fixed={"busy": fixed()})
    prov.provision()
    with open(instance_paths.volume_mount("busy") / "held", "w"):
        with pytest.raises(VolumeError) as info:
            prov.release()
        # The system volume was released although "busy" failed before it.
        assert set(volumes_in_use(instance_paths.fixed_volumes)) == {"busy"}
    assert info.value.message.startswith("could not release volumes: busy: umount")
    prov.release()
    assert volumes_in_use(instance_paths.fixed_volumes) == {}


def test_release_without_anything_provisioned_is_a_no_op(instance_paths: InstancePaths) -> None:
    provisioner(instance_paths, fixed={"data": fixed()}).release()
    assert not instance_paths.root.exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"legacy": {"../escape": "/x"}}, "volume name '../escape' must be"),
        ({"legacy": {"ok": "relative"}}, "volume ok: container path 'relative' must be absolute"),
        ({"files": {"a/b": FileVolumeSpec(content="", mounting_point="/f")}}, "'a/b'"),
        ({"fixed": {"first": fixed(), "r1en_system": fixed()}}, "reserved for the system"),
    ],
)
def test_bad_names_are_rejected_before_anything_is_created(
    instance_paths: InstancePaths, kwargs: dict[str, object], message: str
) -> None:
    config = {"fixed": {"first": fixed()}, **kwargs}
    prov = provisioner(instance_paths, **config)  # type: ignore[arg-type]
    with pytest.raises(VolumeError) as info:
        prov.provision()
    assert message in info.value.message
    assert not instance_paths.data.root.exists()


def test_legacy_volume_that_is_a_symlink_is_refused(
    instance_paths: InstancePaths, tmp_path: Path
) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    link = instance_paths.legacy_volume("cache")
    link.parent.mkdir(parents=True)
    link.symlink_to(target)
    with pytest.raises(VolumeError) as info:
        provisioner(instance_paths, legacy={"cache": "/cache"}).provision()
    assert "is not a real directory" in info.value.message
    assert link.is_symlink()


def test_existing_legacy_dir_keeps_its_owner_and_content(instance_paths: InstancePaths) -> None:
    host = instance_paths.legacy_volume("cache")
    host.mkdir(parents=True)
    (host / "f").write_text("old")
    provisioner(instance_paths, legacy={"cache": "/cache"}, default_owner=(5, 5)).provision()
    assert owner(host) == (0, 0) and (host / "f").read_text() == "old"


def test_file_volume_is_rewritten_from_config(instance_paths: InstancePaths) -> None:
    spec = FileVolumeSpec(content="v1", mounting_point="/etc/app.conf")
    binding = provisioner(instance_paths, files={"cfg": spec}).provision().bindings[0]
    binding.host_root.write_text("tampered")
    spec2 = FileVolumeSpec(content="v2", mounting_point="/etc/app.conf")
    again = provisioner(instance_paths, files={"cfg": spec2}).provision().bindings[0]
    assert again.host_root == binding.host_root and again.host_root.read_text() == "v2"
    assert binding.to_docker_bind() == (
        str(binding.host_root),
        {"bind": "/etc/app.conf", "mode": "ro"},
    )
