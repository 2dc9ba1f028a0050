"""In-volume staging: a chunked apply's new files staged on the volume they go to.

Why (README, "Consumer"): a file staged on the host disk must be *copied* into the
volume while the app is stopped, so a full first snapshot's downtime grew with its
size. Staged on the target volume itself (same filesystem), the commit moves each
file into place with one ``rename``.

Where: ``<volume root>/.car-sync-staging/<op index>``, one flat directory per volume
(mode 0700, the runner's), made while the app still runs. Its name starts with the
runner's reserved prefix, so a snapshot can never hold it, mirror mode never removes
it and a provider's capture never lists it (docs/FORMAT.md, "Host-side layout").

Trust: the app runs while the files sit there and could change them. Each staged file
gets its final owner, mode and mtime at staging, and its full stat (size, mtime, ctime,
inode, mode, owner, link count: ``chunked_plan.stat_key``) is kept; ctime cannot be set
by the app. At the commit (the app stopped) ``take`` hands a file out only if the
directory is still the one made (same device and inode, not a link) and the file's stat
is unchanged; otherwise the commit fetches that file again and writes it as before.

Room: a volume stages in place only if the staged bytes (block-rounded), the usual
reserve and ``APP_HEADROOM_FRACTION`` of the volume stay free, so the app keeps room
to write while it runs; otherwise (or on ENOSPC while staging) that volume's files are
staged on the host and copied at the commit as before.

Cleanup: the directory is removed after the commit or the rollback, and swept at every
start (``sweep_volume_staging``); the journal never needs it (a rename-commit leaves
the same ``n.new``/``n.bak`` markers as a write, ``sync/rollback.py``).
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .apply import file_mode
from .chunked_plan import StatKey, stat_key
from .preflight import RESERVED_PREFIX
from .staging import SPACE_RESERVE_BYTES

STAGE_DIR_NAME = f"{RESERVED_PREFIX}staging"
# Part of a volume's size left free for the app while files are staged in it.
APP_HEADROOM_FRACTION = 0.10


@dataclass(frozen=True, slots=True)
class StagedFile:
    """One file staged in a volume and the stat it had when staging finished."""

    path: str
    key: StatKey


def has_room(volume: str, sizes: Iterable[int]) -> bool:
    """Whether ``volume`` can hold files of ``sizes`` and still leave the app its headroom."""
    st = os.statvfs(volume)
    block = st.f_frsize or 4096
    count = 0
    need = SPACE_RESERVE_BYTES + int(st.f_blocks * block * APP_HEADROOM_FRACTION)
    for size in sizes:
        need += -(-size // block) * block
        count += 1
    inodes_ok = not st.f_files or st.f_favail >= count + 16
    return inodes_ok and need <= st.f_bavail * block


class VolumeStaging:
    """The files of one apply staged in their volumes, by journal op index."""

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._dirs: dict[str, tuple[int, int]] = {}  # staging dir -> (st_dev, st_ino)
        self._files: dict[int, StagedFile] = {}

    @property
    def count(self) -> int:
        return len(self._files)

    def make_dir(self, volume: str) -> Path:
        """A fresh staging dir at ``volume``'s root, on the volume's filesystem.

        Raises:
            OSError: it cannot be made, or it is not on the volume's filesystem
                (``EXDEV``: a rename into the volume would fail).
        """
        path = os.path.join(volume, STAGE_DIR_NAME)
        _remove_ours(path, self._log)
        os.mkdir(path, 0o700)
        st = os.lstat(path)
        if st.st_dev != os.lstat(volume).st_dev:
            os.rmdir(path)
            raise OSError(18, "staging dir is not on the volume's filesystem", path)
        self._dirs[path] = (st.st_dev, st.st_ino)
        return Path(path)

    def add(self, index: int, path: Path, owner: tuple[int, int], mode: int, mtime_ns: int) -> None:
        """Give a fetched file its final metadata and remember its stat."""
        os.chown(path, *owner, follow_symlinks=False)
        os.chmod(path, file_mode(mode), follow_symlinks=False)
        os.utime(path, ns=(mtime_ns, mtime_ns), follow_symlinks=False)
        self._files[index] = StagedFile(str(path), stat_key(os.lstat(path)))

    def take(self, index: int) -> str | None:
        """At the commit: the staged file of op ``index`` if it is untouched, else None."""
        staged = self._files.pop(index, None)
        if staged is None:
            return None
        folder = os.path.dirname(staged.path)
        try:
            dir_st = os.lstat(folder)
            file_st = os.lstat(staged.path)
            intact = (
                stat.S_ISDIR(dir_st.st_mode)
                and (dir_st.st_dev, dir_st.st_ino) == self._dirs.get(folder)
                and stat_key(file_st) == staged.key
            )
        except OSError:
            intact = False
        if not intact:
            self._log.warning("staged copy of op %d changed while the app ran; refetching", index)
            return None
        return staged.path

    def clear(self) -> None:
        """Remove every staging dir this apply made (never raises)."""
        for path in list(self._dirs):
            _remove_ours(path, self._log)
        self._dirs.clear()
        self._files.clear()

    def volume_dirs(self) -> list[str]:
        return list(self._dirs)


def _remove_ours(path: str, log: logging.Logger) -> bool:
    """Remove ``path`` if it is a real directory of this process's user; never raises."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        log.warning("could not look at staging dir %s: %s", path, exc)
        return False
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        log.warning("left %s alone: not a staging dir of ours", path)
        return False
    try:
        shutil.rmtree(path)  # never follows a link inside
    except OSError as exc:
        log.warning("could not remove staging dir %s: %s", path, exc)
        return False
    return True


def sweep_volume_staging(volume_roots: Iterable[Path], log: logging.Logger) -> list[str]:
    """At start: remove what a killed apply staged in the volumes (none may stay)."""
    removed = []
    for root in volume_roots:
        path = os.path.join(root, STAGE_DIR_NAME)
        if _remove_ours(path, log):
            log.warning("removed staged files an unfinished apply left in %s", path)
            removed.append(path)
    return removed
