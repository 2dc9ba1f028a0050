"""Scratch ext4 loop volumes for the baselines, and the sweep that leaves nothing behind.

The baselines run on the runner's own kind of filesystem: ``cp -a`` from one ext4 loop
volume into another, ``zstd -dc | tar -x`` into a loop volume. ``ScratchVolumes`` makes
such volumes under the bench's work dir (``LoopbackVolume``, as FIXED_SIZE_VOLUMES does)
and destroys every one it made on exit, also when the measurement failed.

``sweep(work, runtime)`` is the backstop run last by ``run.py``: it removes every
container whose runner data dir lies under ``work``, unmounts every mount under it and
detaches every loop device backed by a file under it, whatever failed before.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from types import TracebackType

from container_apps.bench.common import MiB
from container_apps.runner.docker_runtime import LABEL_DATA_DIR, DockerRuntime
from container_apps.volumes import hosttools
from container_apps.volumes.loopback import LoopbackVolume


class ScratchVolumes:
    """A context manager making ext4 loop volumes under ``root``; all destroyed on exit."""

    def __init__(self, root: Path, log: logging.Logger) -> None:
        self.root = root
        self.log = log
        self._made: list[LoopbackVolume] = []

    def make(self, name: str, mib: int) -> Path:
        """Provision a ``mib`` MiB ext4 loop volume; return its mount point."""
        volume = LoopbackVolume(
            f"bench-{name}",
            image_path=self.root / "images" / f"{name}.img",
            mount_point=self.root / "mounts" / name,
            meta_path=self.root / "meta" / f"{name}.json",
            size_bytes=mib * MiB,
            log=self.log,
        )
        self._made.append(volume)
        volume.provision()
        return volume.mount_point

    def __enter__(self) -> ScratchVolumes:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Destroy every volume made (each one even if another fails)."""
        errors: list[str] = []
        for volume in reversed(self._made):
            try:
                volume.destroy()
            except Exception as error:  # the sweep in run.py is the backstop
                errors.append(f"{volume}: {error}")
        self._made.clear()
        if errors:
            raise RuntimeError("scratch volume clean-up incomplete: " + "; ".join(errors))


def _is_under(path: Path, base: Path) -> bool:
    return path == base or base in path.parents


def sweep(work: Path, runtime: DockerRuntime | None = None) -> list[str]:
    """Remove containers, mounts and loop devices the bench made under ``work``.

    Returns what it had to clean (empty when every step cleaned up after itself).
    """
    base = work.resolve()
    cleaned: list[str] = []
    if runtime is not None:
        listed = runtime.client.containers.list(
            ignore_removed=True, all=True, filters={"label": LABEL_DATA_DIR}
        )
        for container in listed:
            owner = container.labels.get(LABEL_DATA_DIR, "")
            if owner and _is_under(Path(owner), base):
                container.remove(force=True)
                cleaned.append(f"container {container.name}")
    targets = {m.target for m in hosttools.mounts() if _is_under(m.target, base)}
    # Deepest first, so a mount inside another one comes off before its parent.
    for target in sorted(targets, key=lambda p: len(p.parts), reverse=True):
        if subprocess.run(["umount", str(target)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(target)], capture_output=True)
        cleaned.append(f"mount {target}")
    for loop in hosttools.loop_devices():
        if loop.back_file is not None and _is_under(loop.back_file, base):
            subprocess.run(["losetup", "-d", loop.name], capture_output=True)
            cleaned.append(f"loop {loop.name}")
    return cleaned
