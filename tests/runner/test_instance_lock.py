"""One runner per instance and data dir: a second one refuses before touching anything."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from container_apps.errors import CarError
from container_apps.runner.instance_lock import InstanceLock, runner_alive
from container_apps.tests.support.lock_holder import kill_holder, start_holder


def test_second_holder_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    first = InstanceLock(tmp_path / "instances" / "app" / "runner.lock")
    first.acquire()
    first.acquire()  # idempotent for its holder
    with pytest.raises(CarError) as caught:
        InstanceLock(first.path).acquire()
    assert f"PID {os.getpid()}" in str(caught.value)
    assert "instance app is already run" in str(caught.value)
    first.release()
    second = InstanceLock(first.path)
    second.acquire()  # free again after release
    second.release()


def test_a_dead_holder_never_blocks_the_next_runner(tmp_path: Path) -> None:
    path = tmp_path / "runner.lock"
    code = (
        "import sys, os; from pathlib import Path;"
        "from container_apps.runner.instance_lock import InstanceLock;"
        f"InstanceLock(Path({str(path)!r})).acquire(); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    lock = InstanceLock(path)
    lock.acquire()
    assert lock.held
    lock.release()


def test_probe_sees_a_live_holder_and_not_its_stale_pid_after_a_kill(tmp_path: Path) -> None:
    path = tmp_path / "runner.lock"
    proc = start_holder(path)
    try:
        live = runner_alive(path)
        assert live.alive is True and live.pid == proc.pid
    finally:
        kill_holder(proc)
    assert path.read_text().strip() == str(proc.pid)  # the PID stays in the file...
    dead = runner_alive(path)
    assert dead.alive is False and dead.pid is None  # ...but is not taken for a live runner
    assert "not held" in dead.detail


def test_probe_of_an_instance_never_run_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "runner.lock"
    live = runner_alive(path)
    assert live.alive is False and "no runner.lock" in live.detail
    assert not path.exists()


def test_probes_racing_starts_never_make_a_runner_refuse(tmp_path: Path) -> None:
    path = tmp_path / "runner.lock"
    first = InstanceLock(path)
    first.acquire()  # the file exists from here on, as after a runner's first start
    first.release()
    stop = threading.Event()

    def probe_forever() -> None:
        while not stop.is_set():
            runner_alive(path)

    probers = [threading.Thread(target=probe_forever) for _ in range(2)]
    for t in probers:
        t.start()
    try:
        deadline = time.monotonic() + 2.0
        starts = 0
        while time.monotonic() < deadline:
            lock = InstanceLock(path)
            lock.acquire()  # raises CarError if a probe made it believe another runner lives
            lock.release()
            starts += 1
    finally:
        stop.set()
        for t in probers:
            t.join()
    assert starts > 10


@pytest.mark.docker
@pytest.mark.loopdev
def test_second_runner_of_a_running_instance_leaves_the_first_alone(
    make_runner: Any, docker_client: Any
) -> None:
    first = make_runner()
    first.start()
    before = docker_client.containers.get(first.app.name).id
    second = make_runner()  # same config, same data dir
    with pytest.raises(CarError, match="already run by PID"):
        second.start()
    second.stop()  # what run_forever's cleanup does: must not touch the first's container
    assert docker_client.containers.get(first.app.name).id == before
    assert first.app.is_running()
    assert (first.paths.volume_mount("r1en_system") / "volume-sync").is_dir()  # still mounted


@pytest.mark.docker
@pytest.mark.loopdev
def test_same_instance_id_in_another_data_dir_never_stops_the_running_app(
    make_runner: Any, docker_client: Any, tmp_path: Path
) -> None:
    from container_apps.container_app_runner import ContainerAppRunnerPlugin
    from container_apps.errors import ContainerRuntimeError
    from container_apps.layout import DataDir

    first = make_runner()
    first.start()
    before = docker_client.containers.get(first.app.name).id
    other = ContainerAppRunnerPlugin(first.config, DataDir(tmp_path / "other-data"))
    with pytest.raises(ContainerRuntimeError, match="is taken by a container of"):
        other.start()
    other.stop()  # run_forever's cleanup after the failed start
    assert docker_client.containers.get(first.app.name).id == before
    assert first.app.is_running()


def test_discard_removes_the_file_only_for_its_holder(tmp_path: Path) -> None:
    holder = InstanceLock(tmp_path / "runner.lock")
    holder.acquire()
    InstanceLock(holder.path).discard()  # not held by this one: the file stays
    assert holder.path.exists()
    holder.discard()
    assert not holder.path.exists() and not holder.held
    again = InstanceLock(holder.path)
    again.acquire()
    assert again.path.read_text() == f"{os.getpid()}\n"
    again.release()
