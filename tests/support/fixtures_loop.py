"""Loopback-volume fixtures: real loop ext4 volumes that never outlive a test.

- ``loop_root``: a per-test directory for images, mounts and meta files; it skips (or,
  with ``loopdev`` in CAR_TEST_REQUIRE, fails) when loop devices are unusable here;
- ``make_loop_volume``: builds LoopbackVolumes under ``loop_root`` and always calls their
  idempotent ``destroy()`` in its finalizer;
- a session-end sweep unmounts everything still mounted under pytest's base temp dir and
  detaches every loop device whose backing file lies there, so even a test that crashed
  mid-provision leaks nothing. It only looks under this session's base temp dir, so
  pytest sessions running next to it keep their volumes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from container_apps.layout import InstancePaths
from container_apps.tests.support.parts import unavailable, used
from container_apps.volumes import hosttools
from container_apps.volumes.loopback import LoopbackVolume
from container_apps.volumes.sizes import parse_size

_TOOLS = ("losetup", "mount", "umount", "fallocate", "mkfs.ext4", "blkid", "resize2fs", "e2fsck")

MakeLoopVolume = Callable[..., LoopbackVolume]


def loop_unavailable_reason() -> str | None:
    """Why real loop volumes cannot run here, or None if they can."""
    if os.geteuid() != 0:
        return "needs root"
    missing = [tool for tool in _TOOLS if shutil.which(tool) is None]
    if missing:
        return f"missing tools: {', '.join(missing)}"
    if not os.path.exists("/dev/loop-control"):
        return "no /dev/loop-control"
    return None


def require_loopdev() -> None:
    """Skip/fail (CAR_TEST_REQUIRE) unless real loop volumes work; record the use."""
    why = loop_unavailable_reason()
    if why is not None:
        unavailable("loopdev", why)
    used("loopdev")


@pytest.fixture
def loop_root(tmp_path: Path) -> Path:
    """A per-test directory for loop images, mounts and meta files."""
    require_loopdev()
    root = tmp_path / "loop"
    root.mkdir()
    return root


@pytest.fixture
def make_loop_volume(loop_root: Path) -> Iterator[MakeLoopVolume]:
    """Factory: ``make_loop_volume(name="vol", size="16M", paths=None, **kwargs)``.

    With ``paths`` (an InstancePaths) the volume lives in that instance's
    ``fixed_volumes/`` layout, else directly under ``loop_root``. Every volume made is
    destroyed after the test.
    """
    made: list[LoopbackVolume] = []

    def make(
        name: str = "vol", size: str = "16M", *, paths: InstancePaths | None = None, **kwargs: Any
    ) -> LoopbackVolume:
        fixed = paths.fixed_volumes if paths is not None else loop_root
        volume = LoopbackVolume(
            name,
            image_path=fixed / "images" / f"{name}.img",
            mount_point=fixed / "mounts" / name,
            meta_path=fixed / "meta" / f"{name}.json",
            size_bytes=parse_size(size),
            log=kwargs.pop("log", logging.getLogger("test.loop")),
            **kwargs,
        )
        made.append(volume)
        return volume

    yield make
    errors = []
    for volume in reversed(made):
        try:
            volume.destroy()
        except Exception as exc:  # keep destroying the rest; the session sweep is the backstop
            errors.append(f"{volume}: {exc}")
    assert not errors, f"destroy failed: {errors}"


def _is_under(path: Path, base: Path) -> bool:
    return path == base or base in path.parents


def sweep_loop_leftovers(base: Path) -> list[str]:
    """Unmount mounts and detach loop devices under ``base``; return what was cleaned."""
    base = base.resolve()
    cleaned: list[str] = []
    targets = [m.target for m in hosttools.mounts() if _is_under(m.target, base)]
    # Deepest first, so a mount nested inside another one comes off before its parent.
    for target in sorted(set(targets), key=lambda p: len(p.parts), reverse=True):
        result = subprocess.run(["umount", str(target)], capture_output=True, check=False)
        if result.returncode != 0:
            subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)
        cleaned.append(f"mount {target}")
    for loop in hosttools.loop_devices():
        if loop.back_file is not None and _is_under(loop.back_file, base):
            subprocess.run(["losetup", "-d", loop.name], capture_output=True, check=False)
            cleaned.append(f"loop {loop.name}")
    return cleaned


@pytest.fixture(scope="session", autouse=True)
def _sweep_loop_leftovers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """At session end, clean up whatever loop state a crashed test left behind."""
    yield
    if loop_unavailable_reason() is not None:
        return
    with contextlib.suppress(Exception):
        cleaned = sweep_loop_leftovers(tmp_path_factory.getbasetemp())
        if cleaned:
            print(f"\nloop sweep cleaned leftovers: {', '.join(cleaned)}")
