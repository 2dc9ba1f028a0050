"""`car demo` as a user runs it: green in under a minute, nothing left behind (README, "The demo").

The demo makes its own temp data dir; ``TMPDIR`` points it into this test's tmp dir, so
"nothing left" is checked there without racing other sessions' temp files.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from container_apps.cli.demo_scenario import CONSUMER_PREFIX, PROVIDER_PREFIX
from container_apps.tests.support.fixtures_loop import require_loopdev

pytestmark = [pytest.mark.docker, pytest.mark.loopdev, pytest.mark.slow]


def mounts_under(base: Path) -> list[str]:
    with open("/proc/mounts", encoding="utf-8") as mounts:
        return [ln for ln in mounts if f" {base}/" in ln.replace("\\040", " ")]


def loops_on(base: Path) -> list[str]:
    out = subprocess.run(
        ["losetup", "-l", "-n", "-O", "NAME,BACK-FILE"], capture_output=True, text=True, check=True
    ).stdout
    return [ln for ln in out.splitlines() if str(base) in ln]


def test_car_demo_runs_green_in_under_a_minute_and_leaves_nothing(
    tmp_path: Path, docker_client: Any, busybox_image: str
) -> None:
    require_loopdev()
    temp = tmp_path / "tmp"
    temp.mkdir()
    started = time.monotonic()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "container_apps", "demo"],
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "TMPDIR": str(temp)},
        )
    finally:
        elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert elapsed < 60, f"demo took {elapsed:.1f}s"
    lines = result.stdout.splitlines()
    assert lines[-1] == "car demo: ok"
    [same] = [ln for ln in lines if ln.startswith("same bytes")]
    assert "provider and consumer apps both report sha256" in same
    assert any(ln.startswith("downtime") for ln in lines)
    assert any(ln.startswith("end to end") for ln in lines)

    assert list(temp.iterdir()) == []  # its temp data dir is gone
    names = {c.name for c in docker_client.containers.list(all=True, ignore_removed=True)}
    assert not [
        n for n in names if n.startswith((f"car-{PROVIDER_PREFIX}", f"car-{CONSUMER_PREFIX}"))
    ]
    assert mounts_under(temp) == []
    assert loops_on(temp) == []


def test_car_demo_in_a_given_data_dir_removes_only_what_it_made(
    tmp_path: Path, docker_client: Any, busybox_image: str
) -> None:
    require_loopdev()
    data = tmp_path / "data"
    (data / "configs").mkdir(parents=True)
    (data / "configs" / "mine.json").write_text("{}")
    (data / "shared" / "blobs").mkdir(parents=True)
    (data / "shared" / "blobs" / "bafkreiother").write_text("someone else's blob")
    result = subprocess.run(
        [sys.executable, "-m", "container_apps", "demo", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [published] = [ln for ln in result.stdout.splitlines() if ln.startswith("published")]
    cid = published.split()[1]
    assert sorted(p.name for p in (data / "shared" / "blobs").iterdir()) == ["bafkreiother"]
    assert not (data / "shared" / "blobs" / cid).exists()
    assert [p.name for p in (data / "configs").iterdir()] == ["mine.json"]
    assert list((data / "instances").iterdir()) == []
    assert mounts_under(data) == [] and loops_on(data) == []
