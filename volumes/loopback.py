"""LoopbackVolume: a fixed-size ext4 image file, attached to a loop device and mounted.

A volume is three pieces of kernel and disk state (image, loop device, mount) that may
each survive a crash. ``provision()`` therefore looks at what exists and only does the
missing steps: an image with a filesystem is reused (never reformatted unless
``force_recreate``), an attached loop device and an existing mount are reused, a larger
size grows the filesystem, and a smaller one is refused because shrinking could lose
data (README, "Volumes"). ``release()`` and ``destroy()`` are idempotent, so callers can run
them in ``finally`` blocks without checking state first.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path

from ..errors import VolumeError
from ..fsutil import atomic_write_json
from ..layout import SYSTEM_VOLUME_NAME
from . import hosttools
from .sizes import format_size

_UMOUNT_ATTEMPTS = 3
_UMOUNT_RETRY_SECONDS = 0.5
DETACH_WAIT_SECONDS = 5.0  # how long a lazily completing `losetup -d` is awaited
_FSCK_OK_CODES = (0, 1, 2)  # 1/2 = errors were corrected; 4+ = left uncorrected or failed


class LoopbackVolume:
    """A fixed-size ext4 image file, attached to a loop device and mounted.

    create/attach/mount/unmount/detach/destroy, all idempotent.
    """

    def __init__(
        self,
        name: str,
        *,
        image_path: Path,
        mount_point: Path,
        meta_path: Path,
        size_bytes: int,
        fs_type: str = "ext4",
        owner: tuple[int, int] | None = None,
        force_recreate: bool = False,
        log: logging.Logger | None = None,
    ) -> None:
        self.name = name
        self.image_path = image_path
        self.mount_point = mount_point
        self.meta_path = meta_path
        self.size_bytes = size_bytes
        self.fs_type = fs_type
        self.owner = owner or (0, 0)
        self.force_recreate = force_recreate
        self.log = log or logging.getLogger(__name__)

    def __repr__(self) -> str:
        return f"LoopbackVolume({self.name!r}, image={str(self.image_path)!r})"

    # --- state ------------------------------------------------------------------------
    @property
    def device(self) -> str | None:
        """The first loop device attached to the image, or None."""
        devices = hosttools.devices_for(self.image_path)
        return devices[0] if devices else None

    @property
    def is_mounted(self) -> bool:
        """True if something is mounted at the mount point."""
        return hosttools.mount_at(self.mount_point) is not None

    # --- lifecycle --------------------------------------------------------------------
    def provision(self) -> None:
        """Create, grow, attach and mount the volume as needed; reuse what exists.

        On failure the volume is released (unmounted and detached) so nothing leaks; the
        image and its data are never deleted here.

        Raises:
            VolumeError: a tool failed, SIZE is smaller than the image, or the image
                holds a different filesystem.
        """
        try:
            self._provision()
        except OSError as exc:
            with contextlib.suppress(VolumeError):
                self.release()
            raise VolumeError(f"volume {self.name}: {exc}", image=str(self.image_path)) from exc
        except BaseException:
            with contextlib.suppress(VolumeError):
                self.release()
            raise

    def release(self) -> None:
        """Unmount and detach; idempotent; never deletes the image.

        Raises:
            VolumeError: umount or losetup failed (e.g. the mount is still busy).
        """
        self._unmount()
        self._detach()

    def destroy(self) -> None:
        """Release, then delete the image, the meta file and the empty mount point.

        Raises:
            VolumeError: release failed, or a file could not be removed.
        """
        self.release()
        try:
            for path in (self.image_path, self.meta_path):
                if path.exists() or path.is_symlink():
                    path.unlink()
                    self.log.info("volume %s: deleted %s", self.name, path)
            with contextlib.suppress(FileNotFoundError):
                self.mount_point.rmdir()
        except OSError as exc:
            raise VolumeError(
                f"volume {self.name}: cannot delete its files: {exc}", image=str(self.image_path)
            ) from exc

    # --- provision steps --------------------------------------------------------------
    def _provision(self) -> None:
        self._prepare_dirs()
        if self.force_recreate and self.image_path.exists():
            self.log.info("volume %s: FORCE_RECREATE set, wiping the image", self.name)
            self.release()
            self.image_path.unlink()
        fresh = not self._has_filesystem()
        if fresh:
            self._create()
        else:
            self._grow_if_needed()
        device = self._attach()
        self._mount(device)
        self._apply_owner()
        if fresh:
            self._remove_lost_found()
        self._write_meta(device)

    def _prepare_dirs(self) -> None:
        try:
            for directory in (self.image_path.parent, self.meta_path.parent):
                directory.mkdir(parents=True, exist_ok=True)
            if self.mount_point.is_symlink():
                raise VolumeError(
                    f"volume {self.name}: mount point {self.mount_point} is a symlink",
                    image=str(self.image_path),
                    hint="remove the symlink; the runner mounts only on real directories",
                )
            self.mount_point.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VolumeError(
                f"volume {self.name}: cannot create its directories: {exc}",
                image=str(self.image_path),
            ) from exc

    def _has_filesystem(self) -> bool:
        """True if the image holds our filesystem; False if there is no image or no fs."""
        if not self.image_path.exists():
            return False
        found = hosttools.probe_fs_type(self.image_path)
        if found is None:
            self.log.warning("volume %s: image has no filesystem, formatting it", self.name)
            return False
        if found != self.fs_type:
            raise VolumeError(
                f"volume {self.name}: image holds an {found} filesystem, expected {self.fs_type}",
                image=str(self.image_path),
                hint="set FORCE_RECREATE to wipe and reformat it",
            )
        return True

    def _create(self) -> None:
        """fallocate + mkfs.ext4 a new image; remove it again if formatting fails."""
        self.release()  # an image without a filesystem may still be attached after a crash
        with contextlib.suppress(FileNotFoundError):
            self.image_path.unlink()
        image = str(self.image_path)
        try:
            hosttools.run(
                ["fallocate", "-l", str(self.size_bytes), image],
                image=self.image_path,
                hint="is there enough free disk space?",
            )
            hosttools.run(["mkfs.ext4", "-F", "-q", "-m", "0", image], image=self.image_path)
        except VolumeError:
            with contextlib.suppress(FileNotFoundError):
                self.image_path.unlink()
            raise
        self.log.info(
            "volume %s: created %s %s image %s",
            self.name,
            format_size(self.size_bytes),
            self.fs_type,
            image,
        )

    def _grow_if_needed(self) -> None:
        """Grow to SIZE (or finish an interrupted grow); refuse to shrink."""
        current = self.image_path.stat().st_size
        if self.size_bytes < current:
            raise VolumeError(
                f"volume {self.name}: SIZE {format_size(self.size_bytes)} is smaller than the "
                f"existing image ({format_size(current)}); shrinking could lose data",
                image=str(self.image_path),
                hint=f"set SIZE to at least {format_size(current)}, or FORCE_RECREATE to wipe it",
            )
        if self.size_bytes == current and not hosttools.ext_fs_lags_image(self.image_path, current):
            return
        self.release()  # e2fsck -f needs the filesystem offline
        image = str(self.image_path)
        hosttools.run(
            ["fallocate", "-l", str(self.size_bytes), image],
            image=self.image_path,
            hint="is there enough free disk space?",
        )
        hosttools.run(["e2fsck", "-f", "-y", image], image=self.image_path, ok_codes=_FSCK_OK_CODES)
        hosttools.run(["resize2fs", image], image=self.image_path)
        self.log.info(
            "volume %s: grew from %s to %s",
            self.name,
            format_size(current),
            format_size(self.size_bytes),
        )

    def _attach(self) -> str:
        """Reuse the loop device already backing the image, else attach a new one."""
        mounted = hosttools.mount_at(self.mount_point)
        existing = hosttools.devices_for(self.image_path)
        if mounted is not None and mounted.source in existing:
            return mounted.source
        if existing:
            self.log.info("volume %s: reusing attached loop device %s", self.name, existing[0])
            return existing[0]
        result = hosttools.run(
            ["losetup", "--find", "--show", str(self.image_path)],
            image=self.image_path,
            hint="are free loop devices available (/dev/loop*)?",
        )
        device = result.stdout.strip()
        self.log.info("volume %s: attached %s to %s", self.name, self.image_path, device)
        return device

    def _mount(self, device: str) -> None:
        """Mount ``device`` at the mount point unless it is mounted there already."""
        mounted = hosttools.mount_at(self.mount_point)
        if mounted is not None:
            if mounted.source == device:
                self.log.info("volume %s: reusing mount at %s", self.name, self.mount_point)
                return
            raise VolumeError(
                f"volume {self.name}: {mounted.source} is already mounted at {self.mount_point}",
                image=str(self.image_path),
                device=device,
                hint="unmount it; another volume or tool holds this mount point",
            )
        # nodev/nosuid: app-written device nodes or setuid files must not act on the host.
        hosttools.run(
            ["mount", "-t", self.fs_type, "-o", "nodev,nosuid", device, str(self.mount_point)],
            image=self.image_path,
            device=device,
        )
        self.log.info("volume %s: mounted %s at %s", self.name, device, self.mount_point)

    def _apply_owner(self) -> None:
        uid, gid = self.owner
        try:
            os.chown(self.mount_point, uid, gid, follow_symlinks=False)
        except OSError as exc:
            raise VolumeError(
                f"volume {self.name}: cannot chown its root to {uid}:{gid}: {exc}",
                image=str(self.image_path),
            ) from exc
        self.log.info("volume %s: root owned by %d:%d", self.name, uid, gid)

    def _remove_lost_found(self) -> None:
        # A fresh filesystem's lost+found is empty; apps expect an empty volume.
        with contextlib.suppress(FileNotFoundError):
            (self.mount_point / "lost+found").rmdir()
            self.log.info("volume %s: removed lost+found", self.name)

    def _write_meta(self, device: str) -> None:
        meta = {
            "name": self.name,
            "size_bytes": self.size_bytes,
            "size": format_size(self.size_bytes),
            "fs_type": self.fs_type,
            "image": str(self.image_path),
            "loop_device": device,
            "mount_point": str(self.mount_point),
            "owner": list(self.owner),
        }
        try:
            atomic_write_json(self.meta_path, meta)
        except OSError as exc:
            raise VolumeError(
                f"volume {self.name}: cannot write {self.meta_path}: {exc}",
                image=str(self.image_path),
                device=device,
            ) from exc

    # --- release steps ----------------------------------------------------------------
    def _unmount(self) -> None:
        for attempt in range(1, _UMOUNT_ATTEMPTS + 1):
            if hosttools.mount_at(self.mount_point) is None:
                return
            try:
                hosttools.run(
                    ["umount", str(self.mount_point)],
                    image=self.image_path,
                    hint="a process still uses the mount; is the container stopped?",
                )
            except VolumeError:
                # A just-removed container may hold the mount for a moment longer.
                if attempt == _UMOUNT_ATTEMPTS:
                    raise
                time.sleep(_UMOUNT_RETRY_SECONDS)
                continue
            self.log.info("volume %s: unmounted %s", self.name, self.mount_point)

    def _attached_devices(self) -> list[str]:
        """Devices backed by the image, by inode and by path (which also finds an
        image deleted while attached)."""
        devices = hosttools.devices_for(self.image_path)
        image = self.image_path.resolve()
        for loop in hosttools.loop_devices():
            if loop.back_file == image and loop.name not in devices:
                devices.append(loop.name)
        return devices

    def _detach(self) -> None:
        for device in self._attached_devices():
            hosttools.run(["losetup", "--detach", device], image=self.image_path, device=device)
            self.log.info("volume %s: detached %s", self.name, device)
        # On a device the kernel still holds (a just-finished unmount), `losetup -d` only
        # sets autoclear and the detach completes a moment later: wait until it shows.
        deadline = time.monotonic() + DETACH_WAIT_SECONDS
        while self._attached_devices() and time.monotonic() < deadline:
            time.sleep(0.05)


def volumes_in_use(fixed_volumes_dir: Path) -> dict[str, list[str]]:
    """Volumes of ONE instance that the kernel still has mounted or attached.

    Returns:
        name -> what is in use ("mount:<path>", "loop:<device>"), matched by exact parent
        directory so another instance's ``fixed_volumes/`` can never match.
    """
    root = fixed_volumes_dir.resolve()
    in_use: dict[str, list[str]] = {}
    for mount in hosttools.mounts():
        if mount.target.parent == root / "mounts":
            in_use.setdefault(mount.target.name, []).append(f"mount:{mount.target}")
    for loop in hosttools.loop_devices():
        back = loop.back_file
        if back is not None and back.parent == root / "images" and back.suffix == ".img":
            in_use.setdefault(back.stem, []).append(f"loop:{loop.name}")
    return in_use


def sweep_stale_mounts(fixed_volumes_dir: Path, keep: set[str], log: logging.Logger) -> list[str]:
    """Unmount and detach this instance's volumes left over from a crashed run.

    Args:
        fixed_volumes_dir: ONE instance's ``fixed_volumes/`` directory.
        keep: names being provisioned now (they are reused, not swept).
        log: where to report each cleanup.

    Returns:
        Sorted names of the volumes that were cleaned up. Failures are logged and left
        out; the system volume is never swept (it is provisioned after this sweep).
    """
    root = fixed_volumes_dir.resolve()
    swept: list[str] = []
    for name in sorted(volumes_in_use(root)):
        if name in keep or name == SYSTEM_VOLUME_NAME:
            continue
        stale = LoopbackVolume(
            name,
            image_path=root / "images" / f"{name}.img",
            mount_point=root / "mounts" / name,
            meta_path=root / "meta" / f"{name}.json",
            size_bytes=0,
            log=log,
        )
        try:
            stale.release()
        except VolumeError as exc:
            log.warning("stale volume %s: cleanup failed: %s", name, exc)
            continue
        log.info("stale volume %s: unmounted and detached (left from an earlier run)", name)
        swept.append(name)
    return swept
