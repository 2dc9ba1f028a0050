"""What a runner may leave behind under a data dir: containers, mounts, loop devices.

Tests assert this list is empty after every stop (README, "Lifecycle": nothing leaks).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any


def _under(path: str, base: Path) -> bool:
    return path == str(base) or path.startswith(str(base) + "/")


def leftovers(docker_client: Any, data_root: Path) -> list[str]:
    """Every container labelled with this data dir, mount or loop device under it."""
    base = data_root.resolve()
    found = [
        f"container {c.name}"
        for c in docker_client.containers.list(
            all=True, filters={"label": "car.data_dir"}, ignore_removed=True
        )
        if _under(c.labels.get("car.data_dir", ""), base)
        or _under(c.labels.get("car.data_dir", ""), data_root.absolute())
    ]
    with open("/proc/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            target = line.split()[1].replace("\\040", " ")
            if _under(target, base):
                found.append(f"mount {target}")
    images = sorted(base.rglob("*.img")) if base.exists() else []
    for image in images:
        out = subprocess.run(
            ["losetup", "-j", str(image)], capture_output=True, text=True, check=False
        ).stdout.strip()
        if out:
            found.append(f"loop {out}")
    return found
