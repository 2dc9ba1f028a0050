"""Runner fixtures: fast configs on the busybox image and runners that always stop."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from container_apps.container_app_runner import ContainerAppRunnerPlugin
from container_apps.errors import CarError
from container_apps.layout import DataDir
from container_apps.runner.runner_config import RunnerConfig
from container_apps.tests.support.fixtures_loop import require_loopdev

MakeRunner = Callable[..., ContainerAppRunnerPlugin]

# Fast on purpose: small loop delay, short stop timeout, an app that exits on TERM.
FAST: dict[str, Any] = {
    "NETWORK_MODE": "none",
    "PROCESS_DELAY": 0.1,
    "STOP_TIMEOUT": 1,
    "CONTAINER_START_COMMAND": ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"],
}


def exec_sh(docker_client: Any, name: str, script: str) -> str:
    """Run ``script`` in the running container; return stdout (assert it succeeded)."""
    code, out = docker_client.containers.get(name).exec_run(["sh", "-c", script])
    text = out.decode()
    assert code == 0, text
    return str(text)


@pytest.fixture
def make_runner(docker_client: Any, busybox_image: str, data_dir: Path) -> Iterator[MakeRunner]:
    """``make_runner(**config_keys)``: a runner on ``data_dir``, stopped after the test."""
    require_loopdev()
    made: list[ContainerAppRunnerPlugin] = []

    def make(**keys: Any) -> ContainerAppRunnerPlugin:
        raw = {"INSTANCE_ID": "app1", "IMAGE": busybox_image, **FAST, **keys}
        config = RunnerConfig.parse(raw)
        runner = ContainerAppRunnerPlugin(
            config, DataDir(data_dir), log=logging.getLogger(f"test.runner.{config.instance_id}")
        )
        made.append(runner)
        return runner

    yield make
    for runner in reversed(made):
        with contextlib.suppress(CarError):
            runner.stop()
