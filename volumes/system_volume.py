"""The system volume /r1en_system: the app's only channel to the runner (README, "Volumes").

A 10M ext4 loop volume provisioned like any fixed-size volume, plus exact permissions:
the root is ``root:root 0755`` so the app cannot replace runner-owned entries, and
``volume-sync/`` is a real ``root:root 01777`` directory so any app user can drop a
request but not delete another user's files. Whatever sits at ``volume-sync`` from an
earlier run (a symlink the app planted, a file) is removed without being followed,
because the runner later writes control files there.
"""

from __future__ import annotations

import logging
import os
import stat

from ..errors import VolumeError
from ..layout import (
    SYSTEM_ROOT_MODE,
    SYSTEM_VOLUME_MOUNT,
    SYSTEM_VOLUME_NAME,
    SYSTEM_VOLUME_SIZE,
    VOLUME_SYNC_DIR_MODE,
    InstancePaths,
)
from .binding import VolumeBinding
from .loopback import LoopbackVolume
from .sizes import parse_size


def system_volume(paths: InstancePaths, log: logging.Logger) -> LoopbackVolume:
    """The LoopbackVolume of this instance's system volume (not provisioned yet)."""
    return LoopbackVolume(
        SYSTEM_VOLUME_NAME,
        image_path=paths.volume_image(SYSTEM_VOLUME_NAME),
        mount_point=paths.system_mount,
        meta_path=paths.volume_meta(SYSTEM_VOLUME_NAME),
        size_bytes=parse_size(SYSTEM_VOLUME_SIZE),
        owner=(0, 0),
        log=log,
    )


def provision_system_volume(paths: InstancePaths, log: logging.Logger) -> VolumeBinding:
    """Provision /r1en_system with its exact ownership and modes.

    Returns:
        The read-write binding of the mount at /r1en_system.

    Raises:
        VolumeError: the volume could not be provisioned or its modes not set; the
            volume is released again in that case.
    """
    volume = system_volume(paths, log)
    volume.provision()
    try:
        _set_modes(paths, log)
    except (OSError, VolumeError) as exc:
        try:
            volume.release()
        except VolumeError as release_exc:
            log.warning("system volume: release after failure also failed: %s", release_exc)
        if isinstance(exc, VolumeError):
            raise
        raise VolumeError(
            f"system volume: cannot prepare {paths.volume_sync_dir}: {exc}",
            image=str(volume.image_path),
        ) from exc
    return VolumeBinding(
        name=SYSTEM_VOLUME_NAME,
        kind="system",
        host_root=paths.system_mount,
        container_path=SYSTEM_VOLUME_MOUNT,
        read_only=False,
    )


def _set_modes(paths: InstancePaths, log: logging.Logger) -> None:
    root = paths.system_mount
    os.chown(root, 0, 0, follow_symlinks=False)
    os.chmod(root, SYSTEM_ROOT_MODE)
    sync_dir = paths.volume_sync_dir
    _remove_non_directory(sync_dir, log)
    if not os.path.lexists(sync_dir):
        os.mkdir(sync_dir)
        log.info("system volume: created %s", sync_dir)
    # Through an O_NOFOLLOW descriptor, so a symlink swapped in meanwhile is not followed.
    fd = os.open(sync_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        os.fchown(fd, 0, 0)
        os.fchmod(fd, VOLUME_SYNC_DIR_MODE)
    finally:
        os.close(fd)
    log.info("system volume: %s is root:root %s", sync_dir, oct(VOLUME_SYNC_DIR_MODE))


def _remove_non_directory(path: os.PathLike[str], log: logging.Logger) -> None:
    """Remove whatever is at ``path`` unless it is a real directory; never follow it."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        return
    os.unlink(path)  # unlink removes a symlink itself, never its target
    kind = "symlink" if stat.S_ISLNK(st.st_mode) else "non-directory"
    log.warning("system volume: replaced a %s at %s", kind, path)
