"""Leases across real processes on real Redis and SQLite: one winner, and a dead holder's
lease passes on after it expires (registries/lease.py)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from container_apps.registries.factory import open_registry
from container_apps.registries.lease import LEASE_HKEY, LeaseHolder
from container_apps.tests.support.lease_child import KILLED
from container_apps.tests.support.sigkill import run_and_kill

CHILD = "container_apps.tests.support.lease_child"


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/registry.sqlite"
    return str(request.getfixturevalue("redis_registry_url"))


def test_processes_racing_for_one_key_never_both_get_it(registry_url: str, tmp_path: Path) -> None:
    open_registry(registry_url).check()  # create the sqlite file before the race
    outs = [tmp_path / f"child-{i}" for i in range(12)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", CHILD, "race", registry_url, "app", str(i), str(out)]
        )
        for i, out in enumerate(outs)
    ]
    time.sleep(1.5)  # let every child import and connect
    for out in outs:
        out.with_suffix(".go").write_text("")
    for proc in procs:
        assert proc.wait(timeout=60) == 0
    answers = sorted(out.read_text() for out in outs)
    assert answers == ["granted"] + ["refused"] * 11


def test_a_holder_killed_by_sigkill_loses_its_lease_when_it_expires(
    registry_url: str, tmp_path: Path
) -> None:
    run_and_kill(tmp_path, CHILD, "hold", registry_url, "app", str(tmp_path), "2")
    registry = open_registry(registry_url)
    successor = LeaseHolder("node-b", "instance-b")
    refused = registry.acquire_lease(LEASE_HKEY, "app", successor, 60)
    assert not refused.acquired and refused.lease.holder == KILLED
    time.sleep(max(0.0, refused.lease.expires_at - time.time()) + 0.2)
    taken = registry.acquire_lease(LEASE_HKEY, "app", successor, 60)
    assert taken.acquired and taken.expired is not None and taken.expired.holder == KILLED
