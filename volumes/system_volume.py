"""The system volume /r1en_system: the app's only channel to the runner (SPEC §4).

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
from ..layout import InstancePaths
from ..sync import constants as C
from ..sync.config import SyncConfig
from .binding import VolumeBinding
from .loopback import LoopbackVolume
from .sizes import parse_size


def system_volume(paths: InstancePaths, log: logging.Logger) -> LoopbackVolume:
    """The LoopbackVolume of this instance's system volume (not provisioned yet)."""
    return LoopbackVolume(
        C.SYSTEM_VOLUME_NAME,
        image_path=paths.volume_image(C.SYSTEM_VOLUME_NAME),
        mount_point=paths.system_mount,
        meta_path=paths.volume_meta(C.SYSTEM_VOLUME_NAME),
        size_bytes=parse_size(C.SYSTEM_VOLUME_SIZE),
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
        name=C.SYSTEM_VOLUME_NAME,
        kind="system",
        host_root=paths.system_mount,
        container_path=C.SYSTEM_VOLUME_MOUNT,
        read_only=False,
    )


def _set_modes(paths: InstancePaths, log: logging.Logger) -> None:
    root = paths.system_mount
    os.chown(root, 0, 0, follow_symlinks=False)
    os.chmod(root, C.SYSTEM_ROOT_MODE)
    sync_dir = paths.volume_sync_dir
    _remove_non_directory(sync_dir, log)
    if not os.path.lexists(sync_dir):
        os.mkdir(sync_dir)
        log.info("system volume: created %s", sync_dir)
    # Through an O_NOFOLLOW descriptor, so a symlink swapped in meanwhile is not followed.
    fd = os.open(sync_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        os.fchown(fd, 0, 0)
        os.fchmod(fd, C.VOLUME_SYNC_DIR_MODE)
    finally:
        os.close(fd)
    log.info("system volume: %s is root:root %s", sync_dir, oct(C.VOLUME_SYNC_DIR_MODE))


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


# Names the runner owns: exported only with a bound system volume, never taken from ENV.
RESERVED_ENV_NAMES = (
    C.ENV_SYSTEM_VOLUME,
    C.ENV_VOLUME_SYNC_DIR,
    C.ENV_SYNC_REQUEST_FILE,
    C.ENV_SYNC_TYPE,
    C.ENV_SYNC_KEY,
)


def system_env(sync: SyncConfig) -> dict[str, str]:
    """The env vars exported to the app when the system volume is bound (SPEC §4).

    Returns:
        R1_SYSTEM_VOLUME, R1_VOLUME_SYNC_DIR and R1_SYNC_REQUEST_FILE always; R1_SYNC_TYPE
        and R1_SYNC_KEY too when sync is enabled. They override same-named ENV entries.
    """
    env = {
        C.ENV_SYSTEM_VOLUME: C.SYSTEM_VOLUME_MOUNT,
        C.ENV_VOLUME_SYNC_DIR: C.VOLUME_SYNC_DIR,
        C.ENV_SYNC_REQUEST_FILE: f"{C.VOLUME_SYNC_DIR}/{C.REQUEST_FILE}",
    }
    if sync.enabled and sync.type is not None and sync.key is not None:
        env[C.ENV_SYNC_TYPE] = sync.type
        env[C.ENV_SYNC_KEY] = sync.key
    return env
