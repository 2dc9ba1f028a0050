"""VolumeProvisioner: every volume of one instance, in the start order (README, "Lifecycle").

legacy VOLUMES -> FILE_VOLUMES -> sweep of stale mounts -> FIXED_SIZE_VOLUMES -> system
volume. A data-volume failure stops the start: whatever this call mounted is released
first, so a failed start leaks no mount or loop device. A system-volume failure does
not stop the start: the app runs without /r1en_system and sync stays off, with the
reason kept for ``car sync status`` (README, "Volumes").
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import VolumeError
from ..fsutil import atomic_write_bytes
from ..layout import SYSTEM_VOLUME_NAME, InstancePaths
from .binding import VolumeBinding
from .loopback import LoopbackVolume, sweep_stale_mounts, volumes_in_use
from .specs import FileVolumeSpec, FixedVolumeSpec, normalize_container_path, validate_volume_name
from .system_volume import provision_system_volume, system_volume


@dataclass(frozen=True)
class ProvisionResult:
    """What ``provision()`` bound, and why the system volume is missing (None = bound)."""

    bindings: list[VolumeBinding]
    system_volume_error: str | None


class VolumeProvisioner:
    """Provisions and releases all volumes of one instance."""

    def __init__(
        self,
        paths: InstancePaths,
        *,
        fixed: Mapping[str, FixedVolumeSpec],
        legacy: Mapping[str, str],
        files: Mapping[str, FileVolumeSpec],
        default_owner: tuple[int, int] | None,
        log: logging.Logger,
    ) -> None:
        """Args:
        paths: this instance's host paths.
        fixed: FIXED_SIZE_VOLUMES by name.
        legacy: VOLUMES, name -> container path.
        files: FILE_VOLUMES by name.
        default_owner: the image USER as (uid, gid), resolved by the runner, or None.
        log: where each action is reported.
        """
        self.paths = paths
        self.fixed = dict(fixed)
        self.legacy = dict(legacy)
        self.files = dict(files)
        self.default_owner = default_owner
        self.log = log

    # --- provision --------------------------------------------------------------------
    def provision(self) -> ProvisionResult:
        """Provision every volume; see the module docstring for order and failures.

        Raises:
            VolumeError: a legacy, file or fixed-size volume failed (the message names
                it); volumes mounted by this call were released first.
        """
        self._check_names()
        bindings = [self._legacy(name, path) for name, path in self.legacy.items()]
        bindings += [self._file(name, spec) for name, spec in self.files.items()]
        sweep_stale_mounts(self.paths.fixed_volumes, set(self.fixed), self.log)
        bindings += self._fixed_all()
        try:
            bindings.append(provision_system_volume(self.paths, self.log))
        except VolumeError as exc:
            self.log.error("system volume unavailable, sync is off: %s", exc)
            return ProvisionResult(bindings, system_volume_error=str(exc))
        return ProvisionResult(bindings, system_volume_error=None)

    def _check_names(self) -> None:
        """Reject unsafe names and paths before anything is created or mounted."""
        for name in (*self.legacy, *self.files, *self.fixed):
            _checked_name(name)
        for name, container_path in self.legacy.items():
            _checked_path(name, container_path)

    def _legacy(self, name: str, container_path: str) -> VolumeBinding:
        host = self.paths.legacy_volume(name)
        cpath = _checked_path(name, container_path)
        try:
            if host.is_symlink() or (host.exists() and not host.is_dir()):
                raise VolumeError(
                    f"volume {name}: {host} is not a real directory",
                    hint="remove it; legacy volume dirs must be plain directories",
                )
            if not host.exists():
                host.mkdir(parents=True)
                if self.default_owner is not None:
                    # A non-root image USER must be able to write its new empty volume.
                    os.chown(host, *self.default_owner)
                self.log.info("volume %s: created %s", name, host)
        except OSError as exc:
            raise VolumeError(f"volume {name}: cannot create {host}: {exc}") from exc
        return VolumeBinding(name, "legacy", host, cpath, read_only=False)

    def _file(self, name: str, spec: FileVolumeSpec) -> VolumeBinding:
        directory = self.paths.file_volumes / name
        host = directory / os.path.basename(spec.mounting_point)
        try:
            for parent in (self.paths.file_volumes, directory):
                if parent.is_symlink():
                    raise VolumeError(f"file volume {name}: {parent} is a symlink")
            directory.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(host, spec.content.encode("utf-8"), mode=0o644)
        except OSError as exc:
            raise VolumeError(f"file volume {name}: cannot write {host}: {exc}") from exc
        self.log.info("file volume %s: wrote %s (read-only in the app)", name, host)
        return VolumeBinding(name, "file", host, spec.mounting_point, read_only=True)

    def _fixed_all(self) -> list[VolumeBinding]:
        done: list[LoopbackVolume] = []
        bindings: list[VolumeBinding] = []
        for name, spec in self.fixed.items():
            volume = self._fixed_volume(name, spec)
            try:
                volume.provision()
            except VolumeError as exc:
                self._release_quietly(done)
                raise VolumeError(
                    f"fixed-size volume {name!r}: {exc.message}",
                    image=exc.image,
                    device=exc.device,
                    hint=exc.hint,
                ) from exc
            done.append(volume)
            bindings.append(VolumeBinding(name, "fixed", volume.mount_point, spec.mounting_point))
        return bindings

    def _fixed_volume(self, name: str, spec: FixedVolumeSpec) -> LoopbackVolume:
        return LoopbackVolume(
            name,
            image_path=self.paths.volume_image(name),
            mount_point=self.paths.volume_mount(name),
            meta_path=self.paths.volume_meta(name),
            size_bytes=spec.size_bytes,
            fs_type=spec.fs_type,
            owner=self._owner(spec),
            force_recreate=spec.force_recreate,
            log=self.log,
        )

    def _owner(self, spec: FixedVolumeSpec) -> tuple[int, int]:
        """OWNER_UID/OWNER_GID, each else the image USER's, else root (README, "Volumes")."""
        fallback_uid, fallback_gid = self.default_owner or (0, 0)
        uid = spec.owner_uid if spec.owner_uid is not None else fallback_uid
        gid = spec.owner_gid if spec.owner_gid is not None else fallback_gid
        return uid, gid

    def _release_quietly(self, volumes: list[LoopbackVolume]) -> None:
        for volume in reversed(volumes):
            try:
                volume.release()
            except VolumeError as exc:
                self.log.error("volume %s: release after a failed start failed: %s", volume, exc)

    # --- release ----------------------------------------------------------------------
    def release(self) -> None:
        """Unmount and detach every fixed-size and system volume of this instance.

        Covers the configured volumes, those named by meta files and anything the
        kernel still has mounted or attached under this instance; best effort over all.

        Raises:
            VolumeError: listing every volume that could not be released.
        """
        failures: list[str] = []
        for volume in self._known_volumes():
            try:
                volume.release()
            except VolumeError as exc:
                failures.append(f"{volume.name}: {exc}")
        if failures:
            raise VolumeError("could not release volumes: " + "; ".join(failures))

    def _known_volumes(self) -> list[LoopbackVolume]:
        names = set(self.fixed)
        meta_dir = self.paths.fixed_volumes / "meta"
        if meta_dir.is_dir():
            names.update(p.stem for p in meta_dir.glob("*.json"))
        names.update(volumes_in_use(self.paths.fixed_volumes))
        names.discard(SYSTEM_VOLUME_NAME)
        volumes = [self._known_volume(name) for name in sorted(names)]
        # The system volume goes last: it is the last one provisioned.
        return [*volumes, system_volume(self.paths, self.log)]

    def _known_volume(self, name: str) -> LoopbackVolume:
        spec = self.fixed.get(name)
        return LoopbackVolume(
            name,
            image_path=self.paths.volume_image(name),
            mount_point=self.paths.volume_mount(name),
            meta_path=self.paths.volume_meta(name),
            size_bytes=spec.size_bytes if spec is not None else 0,  # release ignores size
            log=self.log,
        )


def _checked_name(name: str) -> str:
    try:
        return validate_volume_name(name)
    except ValueError as exc:
        raise VolumeError(str(exc)) from None


def _checked_path(name: str, container_path: str) -> str:
    try:
        return normalize_container_path(container_path)
    except ValueError as exc:
        raise VolumeError(f"volume {name}: {exc}") from None
