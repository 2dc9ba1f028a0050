"""Docker fixtures: the engine check, the busybox test image and labelled containers.

Every container a test creates carries ``car.test=<session id>`` and is removed by its
finalizer; at session end everything with that label, and every runner container whose
``car.data_dir`` label lies under pytest's base temp dir, is removed too, which also
catches containers leaked by crashed tests (docker-py's ``tmp_containers``).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from container_apps.runner.busybox_image import BUSYBOX_IMAGE_TAG, write_build_context
from container_apps.tests.support.parts import unavailable, used

SESSION_ID = uuid.uuid4().hex[:12]
TEST_LABEL = "car.test"


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """A docker-py client for a running engine; skip/fail (CAR_TEST_REQUIRE) otherwise."""
    try:
        import docker

        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as exc:
        unavailable("docker", f"no Docker engine answers: {exc}")
    try:
        yield client
    finally:
        _sweep(client)
        client.close()


def _sweep(client: Any) -> None:
    for c in client.containers.list(
        ignore_removed=True, all=True, filters={"label": f"{TEST_LABEL}={SESSION_ID}"}
    ):
        with contextlib.suppress(Exception):
            c.remove(force=True)


@pytest.fixture(scope="session", autouse=True)
def _sweep_runner_containers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Remove runner containers whose data dir is under this session's temp root."""
    yield
    base = str(tmp_path_factory.getbasetemp())
    try:
        import docker

        client = docker.from_env(timeout=30)
        for c in client.containers.list(
            all=True, filters={"label": "car.data_dir"}, ignore_removed=True
        ):
            if c.labels.get("car.data_dir", "").startswith(base):
                with contextlib.suppress(Exception):
                    c.remove(force=True)
        client.close()
    except Exception:
        pass  # no engine: nothing can have leaked


@pytest.fixture(scope="session")
def busybox_image(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Build (once per session) the FROM-scratch busybox image; return its tag."""
    context = write_build_context(tmp_path_factory.mktemp("busybox-image"))
    docker_client.images.build(path=str(context), tag=BUSYBOX_IMAGE_TAG, rm=True)
    used("docker")
    return BUSYBOX_IMAGE_TAG


@pytest.fixture
def container_factory(docker_client: Any, busybox_image: str) -> Iterator[Callable[..., Any]]:
    """Run labelled containers (network_mode none) and remove them when the test ends."""
    made: list[Any] = []

    def make(command: str | list[str] = "sleep 3600", **kwargs: Any) -> Any:
        labels = {TEST_LABEL: SESSION_ID, **kwargs.pop("labels", {})}
        kwargs.setdefault("network_mode", "none")
        kwargs.setdefault("detach", True)
        container = docker_client.containers.run(
            kwargs.pop("image", busybox_image), command, labels=labels, **kwargs
        )
        made.append(container)
        return container

    yield make
    for container in made:
        with contextlib.suppress(Exception):
            container.remove(force=True)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A fresh runner data directory for one test."""
    path = tmp_path / "car-data"
    path.mkdir()
    return path
