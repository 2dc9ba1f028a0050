"""`car run` as a subprocess: exit codes and a clean Ctrl-C (README, "Lifecycle")."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from container_apps.tests.support.fixtures_loop import require_loopdev, sweep_loop_leftovers
from container_apps.tests.support.leftovers import leftovers

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "busybox-fixed.json"
CAR = [sys.executable, "-c", "from container_apps.cli import main; main()"]
VALID = {"INSTANCE_ID": "cli1", "IMAGE": "car-busybox:latest", "NETWORK_MODE": "none"}


def car_run(config: Path, data: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CAR, "run", str(config), "--data-dir", str(data), *extra],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({**VALID, "IMAGEE": "x"}, "IMAGEE: unknown key (did you mean IMAGE?)"),
        ({**VALID, "SYNC": {"ENABLED": "false"}}, "SYNC.ENABLED: must be a JSON boolean"),
        ({"INSTANCE_ID": "cli1"}, "IMAGE: required"),
        ({**VALID, "INSTANCE_ID": "Bad Id"}, "INSTANCE_ID: must be 1-63 characters"),
        (
            {
                **VALID,
                "FIXED_SIZE_VOLUMES": {"r1en_system": {"SIZE": "10M", "MOUNTING_POINT": "/x"}},
            },
            "FIXED_SIZE_VOLUMES.r1en_system: volume name 'r1en_system' is reserved",
        ),
    ],
)
def test_invalid_config_exits_2_naming_the_key_before_touching_anything(
    tmp_path: Path, raw: dict[str, Any], expected: str
) -> None:
    config = tmp_path / "car.json"
    config.write_text(json.dumps(raw))
    data = tmp_path / "data"
    result = car_run(config, data)
    assert result.returncode == 2, result.stderr
    assert f"car: config error: {expected}" in result.stderr
    assert not data.exists()


def test_several_config_problems_are_printed_at_once(tmp_path: Path) -> None:
    config = tmp_path / "car.json"
    config.write_text(json.dumps({"INSTANCE_ID": "X", "PROCESS_DELAY": "5", "STOP_TIMEOUTS": 1}))
    result = car_run(config, tmp_path / "data")
    assert result.returncode == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("car: config error: ")]
    keys = sorted(ln.removeprefix("car: config error: ").split(":")[0] for ln in lines)
    assert keys == ["IMAGE", "INSTANCE_ID", "PROCESS_DELAY", "STOP_TIMEOUTS"]


def test_unreadable_config_exits_2(tmp_path: Path) -> None:
    result = car_run(tmp_path / "absent.json", tmp_path / "data")
    assert result.returncode == 2
    assert "cannot read config file" in result.stderr


def test_config_error_with_a_hint_prints_the_fix(tmp_path: Path) -> None:
    config = tmp_path / "car.json"
    config.write_text("")
    result = car_run(config, tmp_path / "data")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"car: config error: {config}: the config file is empty",
        f"car: cannot use config {config}: write a JSON object with at least INSTANCE_ID and IMAGE",
    ]
    assert not (tmp_path / "data").exists()


def test_bad_log_level_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "car.json"
    config.write_text(json.dumps(VALID))
    result = car_run(config, tmp_path / "data", "--log-level", "LOUD")
    assert result.returncode == 2
    assert not (tmp_path / "data").exists()


@pytest.mark.docker
def test_runtime_failure_exits_1_with_one_line_and_the_fix(
    tmp_path: Path, busybox_image: str
) -> None:
    config = tmp_path / "car.json"
    config.write_text(
        json.dumps({**VALID, "IMAGE": "car-no-such-image:x", "IMAGE_PULL_POLICY": "never"})
    )
    result = car_run(config, tmp_path / "data")
    assert result.returncode == 1
    [line] = [ln for ln in result.stderr.splitlines() if ln.startswith("car: ")]
    assert "car-no-such-image:x is not present locally" in line
    assert "set IMAGE_PULL_POLICY to if_not_present" in line


@pytest.mark.docker
def test_failed_pull_exits_1_with_one_line_naming_the_fix(
    tmp_path: Path, busybox_image: str
) -> None:
    # 127.0.0.1:1 has no registry: the pull fails at once without leaving the host.
    raw = {**VALID, "IMAGE": "127.0.0.1:1/car-none:latest", "IMAGE_PULL_POLICY": "always"}
    config = tmp_path / "car.json"
    config.write_text(json.dumps(raw))
    result = car_run(config, tmp_path / "data")
    assert result.returncode == 1
    [line] = [ln for ln in result.stderr.splitlines() if ln.startswith("car: ")]
    assert "127.0.0.1:1/car-none:latest could not be pulled (IMAGE_PULL_POLICY always)" in line
    assert "build/load the image locally" in line


def test_default_data_dir_is_car_data_dir_else_by_user(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from container_apps.layout import default_data_dir

    monkeypatch.setenv("CAR_DATA_DIR", "rel/data")
    assert default_data_dir() == Path("rel/data")
    monkeypatch.delenv("CAR_DATA_DIR")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert default_data_dir() == Path("/var/lib/car")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_data_dir() == tmp_path / ".local" / "share" / "car"


@pytest.mark.docker
@pytest.mark.loopdev
@pytest.mark.parametrize("how", ["--data-dir", "CAR_DATA_DIR"])
def test_relative_data_dir_is_resolved_against_the_working_directory(
    tmp_path: Path, docker_client: Any, busybox_image: str, how: str
) -> None:
    require_loopdev()
    work = tmp_path / "work"
    work.mkdir()
    instance = f"rel-{uuid.uuid4().hex[:8]}"
    raw = {**VALID, "INSTANCE_ID": instance, "RESTART_POLICY": "no"}
    raw["CONTAINER_START_COMMAND"] = ["sh", "-c", "echo ran-here"]
    (work / "car.json").write_text(json.dumps(raw))
    args = ["--data-dir", "rel/data"] if how == "--data-dir" else []
    env = {**os.environ, "CAR_DATA_DIR": "rel/data"} if how == "CAR_DATA_DIR" else None
    data = work / "rel" / "data"
    try:
        result = subprocess.run(
            [*CAR, "run", "car.json", *args],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr  # the app exited 0, policy "no"
        logs = list((data / "instances" / instance / "logs").glob("*.log"))
        assert [p.read_text() for p in logs] == ["ran-here\n"]
        assert leftovers(docker_client, data) == []
    finally:
        for c in docker_client.containers.list(
            ignore_removed=True, all=True, filters={"name": f"car-{instance}"}
        ):
            c.remove(force=True)
        sweep_loop_leftovers(data)


def example_with_unique_id(tmp_path: Path) -> tuple[Path, str]:
    """The example config, with an INSTANCE_ID no parallel run can share."""
    raw = json.loads(EXAMPLE.read_text())
    raw["INSTANCE_ID"] = f"example-{uuid.uuid4().hex[:8]}"
    raw["STOP_TIMEOUT"] = 2
    path = tmp_path / "example.json"
    path.write_text(json.dumps(raw))
    return path, f"car-{raw['INSTANCE_ID']}"


@pytest.fixture
def runner_process(tmp_path: Path, docker_client: Any, busybox_image: str) -> Iterator[Any]:
    """Start `car run` on the example; always kill it and sweep what it left."""
    require_loopdev()
    procs: list[subprocess.Popen[str]] = []
    data = tmp_path / "data"

    def start(config: Path) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [*CAR, "run", str(config), "--data-dir", str(data)],
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        return proc

    yield start, data
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    for c in docker_client.containers.list(
        all=True, filters={"label": "car.data_dir"}, ignore_removed=True
    ):
        if c.labels["car.data_dir"].startswith(str(data)):
            c.remove(force=True)
    sweep_loop_leftovers(data)


def wait_running(
    docker_client: Any, name: str, proc: subprocess.Popen[str], *, not_id: str = ""
) -> str:
    """Wait until ``proc`` runs a container ``name`` (other than ``not_id``); its id."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        found = docker_client.containers.list(
            ignore_removed=True, filters={"name": name, "status": "running"}
        )
        if found and found[0].id != not_id:
            return str(found[0].id)
        time.sleep(0.1)
    raise AssertionError("container never started")


@pytest.mark.docker
@pytest.mark.loopdev
def test_sigint_stops_the_example_and_leaves_nothing_behind(
    tmp_path: Path, docker_client: Any, runner_process: Any
) -> None:
    start, data = runner_process
    config, name = example_with_unique_id(tmp_path)
    proc = start(config)
    wait_running(docker_client, name, proc)
    mount = data / "instances" / name.removeprefix("car-") / "fixed_volumes" / "mounts" / "data"
    deadline = time.monotonic() + 20
    while not (mount / "ticks.log").exists():  # the app really writes to its volume
        assert time.monotonic() < deadline
        time.sleep(0.1)

    os.kill(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "SIGINT received: stopping" in stderr
    assert leftovers(docker_client, data) == []
    assert any(p.stat().st_size > 0 for p in (mount.parent.parent.parent / "logs").glob("*.log"))


@pytest.mark.docker
@pytest.mark.loopdev
def test_second_sigint_forces_exit_and_next_run_sweeps_leftovers(
    tmp_path: Path, docker_client: Any, runner_process: Any
) -> None:
    start, data = runner_process
    raw = json.loads(EXAMPLE.read_text())
    raw["INSTANCE_ID"] = f"force-{uuid.uuid4().hex[:8]}"
    raw["CONTAINER_START_COMMAND"] = ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]
    raw["STOP_TIMEOUT"] = 10  # the app ignores TERM, so the graceful stop takes this long
    config = tmp_path / "stubborn.json"
    config.write_text(json.dumps(raw))
    name = f"car-{raw['INSTANCE_ID']}"
    proc = start(config)
    first_id = wait_running(docker_client, name, proc)

    os.kill(proc.pid, signal.SIGINT)
    time.sleep(1.0)  # inside the 10 s graceful stop
    os.kill(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "forced exit: cleanup abandoned" in stderr
    assert leftovers(docker_client, data) != []  # forced: things were left on purpose

    raw["CONTAINER_START_COMMAND"] = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
    config.write_text(json.dumps(raw))
    again = start(config)
    wait_running(docker_client, name, again, not_id=first_id)  # the leftover was replaced
    os.kill(again.pid, signal.SIGINT)
    _, stderr = again.communicate(timeout=60)
    assert again.returncode == 0, stderr
    assert leftovers(docker_client, data) == []
