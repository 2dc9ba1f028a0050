"""``bench/run.py`` end to end at small sizes, so the bench machinery cannot rot.

The figures at these sizes mean nothing (a container stop + start dominates every
downtime, so several targets MISS); what is checked is that every part runs on real
Docker, loop volumes, zstd and restic, prints every row and the machine noise, exits
0 or 1 as documented, and leaves no container, mount, loop device or file behind, also
when it is stopped by SIGTERM halfway.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from container_apps.runner.docker_runtime import LABEL_DATA_DIR
from container_apps.tests.support.fixtures_loop import require_loopdev
from container_apps.tests.support.parts import unavailable, used

pytestmark = [pytest.mark.docker, pytest.mark.loopdev, pytest.mark.slow]

SMALL = ["--sizes", "8", "--file-kib", "64", "--throughput-repeat", "1"]
SMALL += ["--change-mib", "16", "--change-files", "16", "--change-rounds", "2", "--rss-mib", "16"]
RESULTS = ("PASS", "MISS", "info")


def require_tools() -> None:
    require_loopdev()
    for tool in ("zstd", "restic"):
        if shutil.which(tool) is None:
            unavailable(tool, f"apt-get install -y {tool}")
        used(tool)
    used("docker")


def bench(work: Path, *args: str) -> subprocess.Popen[str]:
    work.mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "container_apps.bench.run", "--dir", str(work), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def leftovers(work: Path, docker_client: Any) -> list[str]:
    """Containers, mounts, loop devices and files the bench left under ``work``."""
    found = [f"file {p}" for p in work.iterdir()]
    with open("/proc/self/mountinfo", encoding="utf-8") as mounts:
        found += [f"mount {ln.split()[4]}" for ln in mounts if str(work) in ln.split()[4]]
    loops = subprocess.run(
        ["losetup", "-l", "-n", "-O", "NAME,BACK-FILE"], capture_output=True, text=True, check=True
    ).stdout
    found += [f"loop {ln}" for ln in loops.splitlines() if str(work) in ln]
    for c in docker_client.containers.list(
        all=True, filters={"label": LABEL_DATA_DIR}, ignore_removed=True
    ):
        if c.labels[LABEL_DATA_DIR].startswith(str(work)):
            found.append(f"container {c.name}")
    return found


def table_rows(stdout: str) -> dict[str, str]:
    """Figure name -> result, from the printed table."""
    lines = stdout.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("figure "))
    rows = {}
    for line in lines[start + 2 :]:
        if line.startswith("total "):
            break
        cells = line.split()
        rows[line.split("  ")[0]] = cells[-1]
    return rows


def test_bench_runs_every_part_prints_every_row_and_leaves_nothing(
    tmp_path: Path, docker_client: Any
) -> None:
    require_tools()
    work = tmp_path / "work"
    proc = bench(work, *SMALL)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode in (0, 1), stdout + stderr
    rows = table_rows(stdout)
    names = list(rows)
    assert sum(n.startswith("8 MiB ") for n in names) == 8, names
    assert sum(n.startswith("change: ") for n in names) == 7, names
    assert sum(n.startswith("peak RSS: ") for n in names) == 2, names
    assert set(rows.values()) <= set(RESULTS), rows
    # Below 400 MiB the full-snapshot downtimes are information, not targets.
    assert rows["8 MiB provider downtime-stop/start: chunked / cp -a"] == "info"
    assert rows["change: a 26 MiB consumer volume holding 16 MiB applies it"] == "PASS"
    assert proc.returncode == (1 if "MISS" in rows.values() else 0)
    assert "loadavg (1 min) min/median/max" in stdout
    assert "restic 0.1" in stdout
    assert leftovers(work, docker_client) == []


def test_bench_stopped_by_sigterm_halfway_leaves_nothing(
    tmp_path: Path, docker_client: Any
) -> None:
    require_tools()
    work = tmp_path / "work"
    proc = bench(work, *SMALL, "--parts", "sizes")
    assert proc.stderr is not None
    deadline = time.monotonic() + 300
    for line in proc.stderr:  # runners started, volumes mounted, a snapshot under way
        if "first chunked snapshot" in line or time.monotonic() > deadline:
            break
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=180)
    assert proc.returncode == 128 + signal.SIGTERM
    assert leftovers(work, docker_client) == []
    assert not os.listdir(work)
