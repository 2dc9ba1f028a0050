"""AppContainer: a stop counts only when Docker reports the container gone."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from container_apps.errors import ContainerNotFound, ContainerRuntimeError
from container_apps.runner.app_container import CONFIRM_TIMEOUT, AppContainer
from container_apps.runner.docker_runtime import ContainerSpec, ContainerState, DockerRuntime

LOG = logging.getLogger("test.app_container")
RUNNING = ContainerState("running", None)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _failing_stream(exc: Exception) -> Iterator[bytes]:
    raise exc
    yield b""  # a generator, like DockerRuntime.log_stream


def make(mocker: Any, tmp_path: Path) -> tuple[AppContainer, Any, FakeTime]:
    runtime = mocker.create_autospec(DockerRuntime, instance=True)
    runtime.log_stream.return_value = iter([b"app ", b"output\n"])
    fake = FakeTime()
    app = AppContainer(
        runtime,
        ContainerSpec(instance_id="app1", image="img", data_dir=str(tmp_path)),
        stop_timeout=2,
        logs_dir=tmp_path / "logs",
        log=LOG,
        clock=fake.clock,
        sleep=fake.sleep,
    )
    return app, runtime, fake


def test_stop_that_docker_cannot_confirm_raises(mocker: Any, tmp_path: Path) -> None:
    app, runtime, fake = make(mocker, tmp_path)
    runtime.state.return_value = RUNNING
    runtime.remove.side_effect = ContainerRuntimeError("removal already in progress", status=409)
    runtime.status.return_value = "removing"
    with pytest.raises(ContainerRuntimeError) as info:
        app.stop_confirmed()
    assert "still present (removing)" in str(info.value)
    assert "removal already in progress" in str(info.value)
    assert fake.now >= CONFIRM_TIMEOUT  # it kept asking Docker until the deadline
    runtime.stop.assert_called_once_with("car-app1", 2)


def test_stop_confirmed_when_removal_shows_up_late(mocker: Any, tmp_path: Path) -> None:
    app, runtime, _ = make(mocker, tmp_path)
    runtime.state.return_value = RUNNING
    runtime.status.side_effect = ["removing", "removing", None]
    app.stop_confirmed()
    assert runtime.status.call_count == 3
    [saved] = (tmp_path / "logs").glob("*.log")
    assert saved.read_bytes() == b"app output\n"  # not started here: one streamed read
    runtime.log_stream.assert_called_once_with("car-app1", follow=False)


def test_stop_of_absent_container_is_confirmed_at_once(mocker: Any, tmp_path: Path) -> None:
    app, runtime, _ = make(mocker, tmp_path)
    runtime.state.return_value = None
    app.stop_confirmed()
    runtime.stop.assert_not_called()
    runtime.remove.assert_not_called()


def test_failed_stop_still_forces_removal(mocker: Any, tmp_path: Path) -> None:
    app, runtime, _ = make(mocker, tmp_path)
    runtime.state.return_value = RUNNING
    runtime.stop.side_effect = ContainerRuntimeError("timeout")
    runtime.status.return_value = None
    app.stop_confirmed()
    runtime.remove.assert_called_once_with("car-app1", force=True)


def test_log_saving_failure_does_not_block_the_stop(mocker: Any, tmp_path: Path) -> None:
    app, runtime, _ = make(mocker, tmp_path)
    runtime.state.return_value = ContainerState("exited", 1)
    runtime.log_stream.return_value = _failing_stream(ContainerRuntimeError("log driver none"))
    runtime.status.return_value = None
    app.stop_confirmed()
    runtime.remove.assert_called_once()
    assert list((tmp_path / "logs").iterdir()) == []  # no empty or temp file left


def test_container_gone_during_stop_counts_as_confirmed(mocker: Any, tmp_path: Path) -> None:
    app, runtime, _ = make(mocker, tmp_path)
    runtime.state.return_value = RUNNING
    runtime.stop.side_effect = ContainerNotFound("gone")
    app.stop_confirmed()
    runtime.remove.assert_not_called()
