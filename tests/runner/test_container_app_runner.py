"""ContainerAppRunnerPlugin on the real engine with real loop volumes (README, "Lifecycle")."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from container_apps.runner.app_logs import LogRetention
from container_apps.tests.runner.conftest import MakeRunner, exec_sh
from container_apps.tests.support.leftovers import leftovers

pytestmark = [pytest.mark.docker, pytest.mark.loopdev]

DATA_VOLUME = {"data": {"SIZE": "16M", "MOUNTING_POINT": "/app/data"}}


def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_container_starts_with_env_and_volumes_and_is_removed_on_stop(
    make_runner: MakeRunner, docker_client: Any, data_dir: Path
) -> None:
    runner = make_runner(
        ENV={"GREETING": "hello", "COUNT": 3},
        VOLUMES={"logs": "/var/log/app"},
        FILE_VOLUMES={"conf": {"content": "mode=fast\n", "mounting_point": "/etc/app.conf"}},
        FIXED_SIZE_VOLUMES=DATA_VOLUME,
        CONTAINER_START_COMMAND=[
            "sh", "-c", "echo app-says-$GREETING; trap 'exit 0' TERM; sleep 3600 & wait",
        ],
    )  # fmt: skip
    runner.start()
    name = runner.app.name
    assert runner.app.is_running()
    out = exec_sh(
        docker_client,
        name,
        "echo $GREETING $COUNT; cat /etc/app.conf; touch /var/log/app/x /app/data/y; "
        "grep -c ' /app/data ' /proc/mounts; touch /etc/app.conf 2>/dev/null || echo ro",
    )
    assert out.split("\n")[:4] == ["hello 3", "mode=fast", "1", "ro"]
    assert (data_dir / "container_volumes" / "app1_logs" / "x").exists()

    runner.stop()
    assert (
        docker_client.containers.list(ignore_removed=True, all=True, filters={"name": name}) == []
    )
    saved = list(runner.paths.logs.glob("*.log"))
    assert len(saved) == 1 and b"app-says-hello" in saved[0].read_bytes()
    assert leftovers(docker_client, data_dir) == []
    runner.stop()  # idempotent


def test_log_retention_keys_reach_the_app_container(make_runner: MakeRunner) -> None:
    runner = make_runner(LOGS_KEEP_FILES=3, LOGS_KEEP_BYTES=4096)
    assert runner.app.logs.retention == LogRetention(keep_files=3, keep_bytes=4096)
    assert runner.app.logs.directory == runner.paths.logs


def test_system_volume_has_exact_modes_and_env_vars(
    make_runner: MakeRunner, docker_client: Any
) -> None:
    runner = make_runner(
        ENV={"R1_SYSTEM_VOLUME": "/wrong", "OTHER": "kept"},
        SYNC={"ENABLED": True, "KEY": "k1", "TYPE": "provider"},
    )
    runner.start()
    out = exec_sh(
        docker_client,
        runner.app.name,
        "stat -c '%u:%g %a %F' /r1en_system /r1en_system/volume-sync; "
        "env | grep -E '^(R1_|OTHER)' | sort",
    )
    assert out.splitlines() == [
        "0:0 755 directory",
        "0:0 1777 directory",
        "OTHER=kept",
        "R1_SYNC_KEY=k1",
        "R1_SYNC_REQUEST_FILE=/r1en_system/volume-sync/request.json",
        "R1_SYNC_TYPE=provider",
        "R1_SYSTEM_VOLUME=/r1en_system",  # overrides the same-named ENV entry
        "R1_VOLUME_SYNC_DIR=/r1en_system/volume-sync",
    ]
    assert runner.system_volume_error is None


def test_system_volume_failure_exports_no_system_env(
    make_runner: MakeRunner, docker_client: Any, mocker: Any
) -> None:
    from container_apps.errors import VolumeError

    mocker.patch(
        "container_apps.volumes.provisioner.provision_system_volume",
        side_effect=VolumeError("no loop device left"),
    )
    runner = make_runner(ENV={"A": "1", "R1_SYSTEM_VOLUME": "/elsewhere", "R1_SYNC_KEY": "k"})
    runner.start()
    out = exec_sh(docker_client, runner.app.name, "env | grep -c '^R1_' || true; ls /")
    assert out.splitlines()[0] == "0"
    assert "r1en_system" not in out
    assert runner.system_volume_error is not None
    assert "no loop device left" in runner.system_volume_error


def test_fixed_volume_data_survives_runner_stop_and_start(
    make_runner: MakeRunner, docker_client: Any, data_dir: Path
) -> None:
    first = make_runner(FIXED_SIZE_VOLUMES=DATA_VOLUME)
    first.start()
    exec_sh(docker_client, first.app.name, "echo precious > /app/data/keep.txt")
    first.stop()
    assert leftovers(docker_client, data_dir) == []

    second = make_runner(FIXED_SIZE_VOLUMES=DATA_VOLUME)  # a new runner, same data dir
    second.start()
    assert exec_sh(docker_client, second.app.name, "cat /app/data/keep.txt") == "precious\n"


def test_restart_policy_brings_crashed_container_back_with_backoff(
    make_runner: MakeRunner, docker_client: Any, data_dir: Path, mocker: Any
) -> None:
    runner = make_runner(
        FIXED_SIZE_VOLUMES=DATA_VOLUME,
        CONTAINER_START_COMMAND=["sh", "-c", "echo run >> /app/data/runs; sleep 0.3; exit 3"],
        RESTART_BACKOFF_INITIAL=0.5,
        RESTART_BACKOFF_MAX=5,
        RESTART_MAX_RETRIES=2,
    )
    starts: list[float] = []
    original = runner.app.start
    mocker.patch.object(
        runner.app, "start", side_effect=lambda: (starts.append(time.monotonic()), original())
    )
    code = runner.run_forever()  # returns once the policy gives up

    assert code == 1  # the app kept failing
    assert len(starts) == 3  # first start + 2 restarts
    # each restart waited its backoff (0.5 s, then 1 s) on top of the 0.3 s run
    assert starts[1] - starts[0] >= 0.3 + 0.5
    assert starts[2] - starts[1] >= 0.3 + 1.0
    assert runner.final_exit_code == 3
    assert leftovers(docker_client, data_dir) == []
    assert len(list(runner.paths.logs.glob("*.log"))) == 3  # every crashed run's logs saved

    # the full restart path re-provisioned the volume each time without losing data
    second = make_runner(FIXED_SIZE_VOLUMES=DATA_VOLUME)
    second.start()
    assert exec_sh(docker_client, second.app.name, "cat /app/data/runs") == "run\nrun\nrun\n"


def test_restart_policy_no_leaves_a_clean_exit_down(make_runner: MakeRunner) -> None:
    runner = make_runner(CONTAINER_START_COMMAND=["true"], RESTART_POLICY="no")
    assert runner.run_forever() == 0
    assert runner.finished is not None and "RESTART_POLICY is no" in runner.finished.reason


def test_sync_path_stop_confirmed_and_start_keep_volumes_mounted(
    make_runner: MakeRunner, docker_client: Any, mocker: Any
) -> None:
    runner = make_runner(FIXED_SIZE_VOLUMES=DATA_VOLUME)
    runner.start()
    name = runner.app.name
    exec_sh(docker_client, name, "echo from-app > /app/data/a.txt")
    control = runner._container_control()

    control.stop_confirmed()
    assert not control.is_running()
    assert (
        docker_client.containers.list(ignore_removed=True, all=True, filters={"name": name}) == []
    )
    mount = runner.paths.volume_mount("data")
    assert any(f" {mount} " in line for line in Path("/proc/mounts").read_text().splitlines())
    (mount / "b.txt").write_text("applied-while-stopped")  # what an apply would do

    resumed = mocker.spy(runner.restart_policy, "resumed")
    control.start()
    assert control.is_running()
    resumed.assert_called_once_with()  # a sync start is bookkept, as a resumed run
    out = exec_sh(docker_client, name, "cat /app/data/a.txt /app/data/b.txt")
    assert out == "from-app\napplied-while-stopped"


def test_held_start_waits_until_sync_allows_it(make_runner: MakeRunner, mocker: Any) -> None:
    runner = make_runner()
    allowed = mocker.patch.object(runner, "_sync_may_start", return_value=False)
    runner.start()
    assert not runner.app.is_running()
    runner.run_once(time.monotonic())
    assert not runner.app.is_running()
    allowed.return_value = True
    runner.run_once(time.monotonic())
    assert runner.app.is_running()


def test_sync_hooks_run_at_their_lifecycle_points(make_runner: MakeRunner, mocker: Any) -> None:
    runner = make_runner()
    calls = mocker.Mock()
    for hook in ("_sync_setup", "_sync_tick", "_sync_shutdown"):
        mocker.patch.object(runner, hook, side_effect=getattr(calls, hook))
    runner.start()
    assert [c[0] for c in calls.mock_calls] == ["_sync_setup"]
    assert runner.app.is_running()
    runner.run_once(123.0)
    runner.stop()
    assert [c[0] for c in calls.mock_calls] == ["_sync_setup", "_sync_tick", "_sync_shutdown"]
    assert calls._sync_tick.call_args.args == (123.0,)


def test_leftover_container_of_a_crashed_run_is_replaced(
    make_runner: MakeRunner, container_factory: Any, data_dir: Path
) -> None:
    label = {"car.data_dir": str(data_dir.absolute())}
    stale = container_factory("sleep 3600", name="car-app1", labels=label)
    runner = make_runner()
    runner.start()
    assert runner.app.is_running()
    assert runner.runtime.client.containers.get("car-app1").id != stale.id


def test_container_of_another_data_dir_is_left_alone(
    make_runner: MakeRunner, container_factory: Any, data_dir: Path
) -> None:
    from container_apps.errors import ContainerRuntimeError

    other = container_factory("sleep 3600", name="car-app1", labels={"car.data_dir": "/elsewhere"})
    runner = make_runner()
    with pytest.raises(ContainerRuntimeError) as info:
        runner.start()
    assert "taken by a container of /elsewhere" in str(info.value)
    other.reload()
    assert other.status == "running"
    assert not runner.paths.fixed_volumes.exists()  # refused before any volume


def test_missing_image_with_policy_never_touches_no_volume(
    make_runner: MakeRunner, data_dir: Path
) -> None:
    from container_apps.errors import ContainerRuntimeError

    runner = make_runner(IMAGE="car-no-such-image:x", IMAGE_PULL_POLICY="never")
    with pytest.raises(ContainerRuntimeError):
        runner.start()
    assert not runner.paths.fixed_volumes.exists()
    runner.stop()  # nothing was touched, so nothing to undo


# A registry address on loopback where nothing listens: a pull fails at once, offline.
UNREACHABLE_IMAGE = "127.0.0.1:1/car-busybox:latest"


def test_policy_always_pulls_and_a_failed_pull_touches_no_volume(
    make_runner: MakeRunner, docker_client: Any, busybox_image: str
) -> None:
    from container_apps.errors import ContainerRuntimeError

    docker_client.images.get(busybox_image).tag(UNREACHABLE_IMAGE)  # present locally
    try:
        runner = make_runner(IMAGE=UNREACHABLE_IMAGE, IMAGE_PULL_POLICY="always")
        with pytest.raises(ContainerRuntimeError) as info:
            runner.start()  # "always" pulls even though the image is present
    finally:
        docker_client.images.remove(UNREACHABLE_IMAGE, noprune=True)
    assert f"{UNREACHABLE_IMAGE} could not be pulled (IMAGE_PULL_POLICY always)" in str(info.value)
    assert "connection refused" in str(info.value)
    assert "set IMAGE_PULL_POLICY to if_not_present" in str(info.value)
    assert not runner.paths.fixed_volumes.exists()
    assert (
        docker_client.containers.list(
            ignore_removed=True, all=True, filters={"name": runner.app.name}
        )
        == []
    )


def test_stop_attempts_every_step_and_reports_the_failed_one(
    make_runner: MakeRunner, docker_client: Any, data_dir: Path, mocker: Any
) -> None:
    from container_apps.errors import CarError, ContainerRuntimeError

    runner = make_runner(FIXED_SIZE_VOLUMES=DATA_VOLUME)
    runner.start()
    shutdown = mocker.patch.object(
        runner, "_sync_shutdown", side_effect=ContainerRuntimeError("sync would not stop")
    )
    with pytest.raises(CarError) as info:
        runner.stop()
    assert "sync shutdown: sync would not stop" in str(info.value)
    assert leftovers(docker_client, data_dir) == []  # the other steps still ran
    shutdown.side_effect = None
    runner.stop()  # a second stop finishes the job
    assert shutdown.call_count == 2


def test_sync_stop_left_down_is_held_not_judged_by_restart_policy_no(
    make_runner: MakeRunner, docker_client: Any, mocker: Any
) -> None:
    # A consumer halt leaves the container stopped by sync: that is no app exit, so even
    # RESTART_POLICY "no" must not end the runner; the start waits for the halt to clear.
    runner = make_runner(FIXED_SIZE_VOLUMES=DATA_VOLUME, RESTART_POLICY="no")
    runner.start()
    exec_sh(docker_client, runner.app.name, "echo kept > /app/data/k")
    runner._container_control().stop_confirmed()
    halted = mocker.patch.object(runner, "_sync_may_start", return_value=False)
    release = mocker.spy(runner, "_volumes_release")
    for _ in range(3):
        runner.run_once(time.monotonic())
    assert runner.finished is None
    assert runner.restart_policy.pending is None
    assert not runner.app.is_running()

    halted.return_value = True  # `car sync retry` cleared the halt
    runner.run_once(time.monotonic())
    assert runner.app.is_running()
    assert runner.finished is None and runner.restart_policy.restarts == 0
    release.assert_not_called()  # the runtime-only path: volumes stayed mounted
    assert exec_sh(docker_client, runner.app.name, "cat /app/data/k") == "kept\n"


def test_failed_start_after_a_sync_stop_is_retried_by_the_loop(
    make_runner: MakeRunner, mocker: Any
) -> None:
    from container_apps.errors import ContainerRuntimeError

    runner = make_runner(RESTART_POLICY="no")
    runner.start()
    control = runner._container_control()
    original = runner.app.start
    mocker.patch.object(
        runner.app, "start", side_effect=[ContainerRuntimeError("engine busy"), None]
    )
    control.stop_confirmed()
    with pytest.raises(ContainerRuntimeError):
        control.start()  # the provider logs this and leaves the start to the runner
    runner.app.start.side_effect = original
    runner.run_once(time.monotonic())
    assert runner.app.is_running()
    assert runner.finished is None


def test_unstartable_container_after_a_sync_stop_falls_to_the_restart_policy(
    make_runner: MakeRunner, mocker: Any
) -> None:
    from container_apps.errors import ContainerRuntimeError

    runner = make_runner(RESTART_POLICY="no")
    runner.start()
    runner._container_control().stop_confirmed()
    mocker.patch.object(runner.app, "start", side_effect=ContainerRuntimeError("no such image"))
    runner.run_once(time.monotonic())  # the held start fails: counted as a crash
    runner.run_once(time.monotonic())  # ... and RESTART_POLICY "no" gives up
    assert runner.finished is not None and "RESTART_POLICY is no" in runner.finished.reason
    assert runner._exit_code() == 1


def test_user_entrypoint_and_resources_reach_docker_and_user_owns_new_volumes(
    make_runner: MakeRunner, docker_client: Any
) -> None:
    runner = make_runner(
        CONTAINER_USER="1000:1001",
        CONTAINER_ENTRYPOINT=["sh", "-c"],
        CONTAINER_START_COMMAND=["trap 'exit 0' TERM; sleep 3600 & wait"],
        CONTAINER_RESOURCES={"cpu": 0.5, "memory": "64m"},
        FIXED_SIZE_VOLUMES=DATA_VOLUME,
    )
    runner.start()
    container = docker_client.containers.get(runner.app.name)
    assert container.attrs["Config"]["Entrypoint"] == ["sh", "-c"]
    host = container.attrs["HostConfig"]
    assert (host["NanoCpus"], host["Memory"]) == (500_000_000, 64 * 1024**2)
    out = exec_sh(docker_client, runner.app.name, "id -u; id -g; stat -c %u:%g /app/data")
    assert out.splitlines() == ["1000", "1001", "1000:1001"]  # no OWNER_UID: the user's


def test_stop_waits_stop_timeout_for_an_app_that_ignores_term(make_runner: MakeRunner) -> None:
    runner = make_runner(
        STOP_TIMEOUT=2,
        CONTAINER_START_COMMAND=["sh", "-c", "trap '' TERM; while :; do sleep 1; done"],
    )
    runner.start()
    began = time.monotonic()
    runner.stop()
    took = time.monotonic() - began
    assert 2.0 <= took < 10.0  # Docker waited STOP_TIMEOUT, then killed it
    assert runner.app.state() is None


def test_system_volume_failure_turns_sync_off_with_the_reason_in_status(
    make_runner: MakeRunner, mocker: Any
) -> None:
    from container_apps.errors import VolumeError
    from container_apps.sync.status import instance_status

    mocker.patch(
        "container_apps.volumes.provisioner.provision_system_volume",
        side_effect=VolumeError("no loop device left"),
    )
    runner = make_runner(SYNC={"ENABLED": True, "KEY": "k1", "TYPE": "provider"})
    runner.start()
    assert runner.app.is_running()  # the app runs without /r1en_system
    reason = instance_status(runner.paths)["sync_disabled_reason"]
    assert "system volume unavailable" in reason and "no loop device left" in reason
