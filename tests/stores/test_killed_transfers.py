"""Garbage after kill -9 (issue 9 item 6): real SIGKILLs of real transfers, then a sweep.

A child process puts into the ``file://`` store or downloads from S3 (weed) and pauses
mid-transfer (``tests/support/transfer_child.py``). Killed there with SIGKILL, it leaves its
temp file behind; the next start's ``sweep_local`` removes it. Left running, it is another
runner's transfer in flight: the sweep keeps its temp file and the transfer completes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from container_apps.stores.cid import cid_for_file, sha256_file
from container_apps.stores.factory import open_store
from container_apps.tests.support.random_data import MiB, write_random
from container_apps.tests.support.servers import wait_until

CHILD = "container_apps.tests.support.transfer_child"


class Child:
    """One paused transfer in a subprocess."""

    def __init__(self, tmp: Path, url: str, cache: Path, op: str, arg: str) -> None:
        self.control = tmp / f"control-{op}"
        self.control.mkdir()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", CHILD, url, str(cache), op, arg, str(self.control)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_paused(self) -> None:
        def paused() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"child exited early: {self.proc.communicate()}")
            return (self.control / "paused").exists()

        wait_until(paused, 60, "the child's transfer")

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.communicate(timeout=30)  # reaps it and closes the pipes
        assert self.proc.returncode == -signal.SIGKILL

    def resume(self) -> str:
        (self.control / "go").touch()
        out, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, err
        return out.strip()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        if self.proc.stdout is not None and not self.proc.stdout.closed:
            self.proc.communicate(timeout=30)


@pytest.fixture
def children() -> Iterator[list[Child]]:
    started: list[Child] = []
    try:
        yield started
    finally:
        for child in started:
            child.stop()


def _temps(directory: Path, prefix: str) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.startswith(prefix))


def test_put_killed_mid_upload_leaves_a_temp_file_that_the_next_start_sweeps(
    tmp_path: Path, children: list[Child]
) -> None:
    blobs = tmp_path / "blobs"
    url = f"file://{blobs}"
    src = write_random(tmp_path / "archive.bin", 5 * MiB, b"killed")
    child = Child(tmp_path, url, tmp_path / "cache-a", "put", str(src))
    children.append(child)
    child.wait_paused()
    child.kill()
    assert _temps(blobs, ".put-") != []  # what kill -9 leaves: a partial, forever

    removed = open_store(url, cache_dir=tmp_path / "cache-b").sweep_local()

    assert removed != [] and _temps(blobs, ".put-") == []
    assert os.listdir(blobs) == []  # nothing else was there, nothing else was touched


def test_sweep_keeps_a_concurrent_runners_put_in_flight_and_that_put_completes(
    tmp_path: Path, children: list[Child]
) -> None:
    blobs = tmp_path / "blobs"
    url = f"file://{blobs}"
    src = write_random(tmp_path / "archive.bin", 5 * MiB, b"concurrent")
    child = Child(tmp_path, url, tmp_path / "cache-a", "put", str(src))
    children.append(child)
    child.wait_paused()
    in_flight = _temps(blobs, ".put-")
    assert len(in_flight) == 1

    removed = open_store(url, cache_dir=tmp_path / "cache-b").sweep_local()

    assert removed == [] and _temps(blobs, ".put-") == in_flight
    cid = child.resume()
    assert cid == cid_for_file(src)
    assert os.listdir(blobs) == [cid]
    assert sha256_file(blobs / cid) == sha256_file(src)


@pytest.mark.s3
def test_get_killed_mid_download_from_s3_leaves_a_partial_that_the_next_start_sweeps(
    tmp_path: Path, s3_store_url: str, children: list[Child]
) -> None:
    cache = tmp_path / "downloads"
    store = open_store(s3_store_url, cache_dir=cache)
    cid = store.put(write_random(tmp_path / "archive.bin", 20 * MiB, b"s3-killed"))
    child = Child(tmp_path, s3_store_url, cache, "get", cid)
    children.append(child)
    child.wait_paused()
    child.kill()
    leftovers = _temps(cache, ".get-")
    assert leftovers != []  # the partial download

    removed = open_store(s3_store_url, cache_dir=cache).sweep_local()

    assert sorted(removed) == leftovers
    assert os.listdir(cache) == []
    assert sha256_file(store.get(cid)) == sha256_file(tmp_path / "archive.bin")  # remote intact
