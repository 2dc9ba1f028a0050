"""Where things live: the host-side data directory layout and the system volume's paths.

One place computes every path, so the runner, volume-sync and the CLI agree. Nothing
here creates directories except ``InstancePaths.ensure()``, and nothing removes any
except ``InstancePaths.remove_empty()`` (a failed first start takes back what it made).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

# --- the system volume, as the app sees it (docs/FORMAT.md "App-facing control files") ---
SYSTEM_VOLUME_NAME: Final = "r1en_system"
SYSTEM_VOLUME_MOUNT: Final = "/r1en_system"
SYSTEM_VOLUME_SIZE: Final = "10M"
VOLUME_SYNC_SUBDIR: Final = "volume-sync"
VOLUME_SYNC_DIR: Final = f"{SYSTEM_VOLUME_MOUNT}/{VOLUME_SYNC_SUBDIR}"
SYSTEM_ROOT_MODE: Final = 0o755
VOLUME_SYNC_DIR_MODE: Final = 0o1777

# --- an instance's host-side folders (docs/FORMAT.md "Host-side layout") ---------------
HISTORY_DIR: Final = "sync_history"
HISTORY_SENT: Final = "sent"
HISTORY_RECEIVED: Final = "received"
STATE_DIR: Final = "sync_state"
OUTPUT_DIR: Final = "output"


def default_data_dir() -> Path:
    """``CAR_DATA_DIR``, else /var/lib/car for root, else ~/.local/share/car."""
    env = os.environ.get("CAR_DATA_DIR")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/car")
    return Path.home() / ".local" / "share" / "car"


def unusable_dir_reason(path: Path) -> str | None:
    """Why ``path`` cannot be created as a directory: the nearest of it and its parents that
    exists is not a directory (a file where the data dir should be). None when it can."""
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return None if candidate.is_dir() else f"{candidate} is not a directory"
    return None


def topmost_missing(path: Path) -> Path | None:
    """The highest of ``path`` and its parents that does not exist: what creating ``path``
    with ``parents=True`` would make first. None when ``path`` exists."""
    missing = None
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            break
        missing = candidate
    return missing


@dataclass(frozen=True, slots=True)
class DataDir:
    """The whole data directory: instances plus the embedded shared backends."""

    root: Path

    @property
    def instances(self) -> Path:
        return self.root / "instances"

    @property
    def container_volumes(self) -> Path:
        return self.root / "container_volumes"

    @property
    def shared_blobs(self) -> Path:
        return self.root / "shared" / "blobs"

    @property
    def shared_registry(self) -> Path:
        return self.root / "shared" / "registry.sqlite"

    def instance(self, instance_id: str) -> InstancePaths:
        return InstancePaths(self, instance_id)

    def instance_ids(self) -> list[str]:
        """Every instance that has a folder here, sorted."""
        if not self.instances.is_dir():
            return []
        return sorted(p.name for p in self.instances.iterdir() if p.is_dir())


@dataclass(frozen=True, slots=True)
class InstancePaths:
    """Per-instance "plugin data" (never mounted in the app) and its legacy volume dirs."""

    data: DataDir
    instance_id: str

    @property
    def root(self) -> Path:
        return self.data.instances / self.instance_id

    @property
    def fixed_volumes(self) -> Path:
        return self.root / "fixed_volumes"

    def volume_image(self, name: str) -> Path:
        return self.fixed_volumes / "images" / f"{name}.img"

    def volume_meta(self, name: str) -> Path:
        return self.fixed_volumes / "meta" / f"{name}.json"

    def volume_mount(self, name: str) -> Path:
        return self.fixed_volumes / "mounts" / name

    def legacy_volume(self, name: str) -> Path:
        return self.data.container_volumes / f"{self.instance_id}_{name}"

    @property
    def file_volumes(self) -> Path:
        return self.root / "file_volumes"

    @property
    def system_mount(self) -> Path:
        return self.volume_mount(SYSTEM_VOLUME_NAME)

    @property
    def volume_sync_dir(self) -> Path:
        """Host path of /r1en_system/volume-sync (inside the mounted system volume)."""
        return self.system_mount / VOLUME_SYNC_SUBDIR

    @property
    def sync_history(self) -> Path:
        return self.root / HISTORY_DIR

    @property
    def history_sent(self) -> Path:
        return self.sync_history / HISTORY_SENT

    @property
    def history_received(self) -> Path:
        return self.sync_history / HISTORY_RECEIVED

    @property
    def sync_state(self) -> Path:
        return self.root / STATE_DIR

    @property
    def output(self) -> Path:
        return self.root / OUTPUT_DIR

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def runner_state(self) -> Path:
        """What the runner publishes about itself (role, key, backends) for `car sync status`."""
        return self.root / "runner.json"

    def ensure(self) -> None:
        """Create the private per-instance folders (0700: they hold host paths and state)."""
        for path in (
            self.root,
            self.history_sent,
            self.history_received,
            self.sync_state,
            self.output,
            self.logs,
        ):
            path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)

    def remove_empty(self, created: Path) -> None:
        """Remove the folders under ``root`` that hold nothing, then ``root`` and its parents
        up to ``created`` if they are empty too; a file anywhere keeps its folders.

        For a first start that failed before it made anything but the folders of
        ``ensure()``: an empty instance folder would be listed by ``car sync status``.
        """
        for dirpath, _dirs, _files in os.walk(self.root, topdown=False):
            _rmdir_if_empty(Path(dirpath))
        if created != self.root and created not in self.root.parents:
            return
        for parent in self.root.parents:
            if parent == created.parent or not _rmdir_if_empty(parent):
                return


def _rmdir_if_empty(path: Path) -> bool:
    try:
        path.rmdir()
    except OSError:  # not empty (or gone): leave it
        return not path.exists()
    return True
