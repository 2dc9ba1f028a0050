"""DockerRuntime against the real engine, and its error translation (STYLE G7)."""

from __future__ import annotations

import contextlib
import io
import tarfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest
import requests.exceptions
from container_apps.errors import ContainerNotFound, ContainerRuntimeError
from container_apps.runner.docker_runtime import ContainerSpec, DockerRuntime, ensure_busybox_image
from container_apps.volumes.binding import VolumeBinding

MakeSpec = Callable[..., ContainerSpec]


def test_spec_kwargs_name_labels_binds_and_resources(tmp_path: Path) -> None:
    binding = VolumeBinding("data", "fixed", tmp_path, "/app/data")
    conf = VolumeBinding("conf", "file", tmp_path / "c", "/etc/app.conf", read_only=True)
    spec = ContainerSpec(
        instance_id="app1",
        image="img:1",
        data_dir="/var/lib/car",
        command=["sleep", "1"],
        env={"A": "1"},
        bindings=(binding, conf),
        network_mode="none",
        cpu=0.5,
        memory="64m",
        ports={"80/tcp": 8080},
    )
    kwargs = spec.to_docker_kwargs()
    assert kwargs["name"] == "car-app1"
    assert kwargs["labels"] == {
        "car.managed": "true",
        "car.instance": "app1",
        "car.data_dir": "/var/lib/car",
    }
    assert kwargs["volumes"] == {
        str(tmp_path): {"bind": "/app/data", "mode": "rw"},
        str(tmp_path / "c"): {"bind": "/etc/app.conf", "mode": "ro"},
    }
    assert kwargs["environment"] == {"A": "1"}
    assert (kwargs["nano_cpus"], kwargs["mem_limit"]) == (500_000_000, "64m")
    assert kwargs["ports"] == {"80/tcp": 8080}
    assert kwargs["network_mode"] == "none" and kwargs["detach"] is True
    assert "entrypoint" not in kwargs and "user" not in kwargs  # None means image default


@pytest.fixture
def runtime(docker_client: Any, busybox_image: str) -> Iterator[DockerRuntime]:
    rt = DockerRuntime()
    yield rt
    rt.close()


@pytest.fixture
def make_spec(runtime: DockerRuntime, busybox_image: str, tmp_path: Path) -> Iterator[MakeSpec]:
    names: list[str] = []

    def make(command: Any = "sleep 3600", **kwargs: Any) -> ContainerSpec:
        spec = ContainerSpec(
            instance_id=f"rt-{uuid.uuid4().hex[:8]}",
            image=busybox_image,
            data_dir=str(tmp_path),
            command=command,
            network_mode="none",
            **kwargs,
        )
        names.append(spec.name)
        return spec

    yield make
    for name in names:
        with contextlib.suppress(ContainerRuntimeError):
            runtime.remove(name, force=True)


@pytest.mark.docker
def test_run_state_logs_stop_remove_roundtrip(runtime: DockerRuntime, make_spec: MakeSpec) -> None:
    spec = make_spec(
        ["sh", "-c", "echo started-$GREETING; exec sleep 3600"], env={"GREETING": "hi"}
    )
    runtime.run(spec)
    state = runtime.state(spec.name)
    assert state is not None and state.running
    runtime.stop(spec.name, timeout=1)
    stopped = runtime.state(spec.name)
    assert stopped is not None and not stopped.running
    assert stopped.exit_code == 137  # sleep ignores TERM as PID 1: killed after the timeout
    assert b"started-hi" in runtime.logs(spec.name)
    assert b"".join(runtime.log_stream(spec.name, follow=False)) == b"started-hi\n"
    runtime.remove(spec.name)
    assert runtime.state(spec.name) is None
    assert runtime.status(spec.name) is None


@pytest.mark.docker
def test_followed_log_stream_ends_when_the_container_stops(
    runtime: DockerRuntime, make_spec: MakeSpec
) -> None:
    spec = make_spec(["sh", "-c", "echo one; trap 'echo two; exit 0' TERM; sleep 3600 & wait"])
    container_id = runtime.run(spec)
    stream = runtime.log_stream(container_id, follow=True)
    assert next(stream) == b"one\n"  # arrives while the container runs
    runtime.stop(spec.name, timeout=5)
    assert list(stream) == [b"two\n"]  # everything up to the exit, then the end


def test_log_stream_of_a_missing_container_fails_when_read(mocker: Any) -> None:
    client = mocker.Mock()
    client.containers.get.side_effect = docker.errors.NotFound("no such container")
    stream = DockerRuntime(client=client).log_stream("car-x", follow=True)  # nothing asked yet
    client.containers.get.assert_not_called()
    with pytest.raises(ContainerNotFound):
        next(stream)


@pytest.mark.docker
def test_wait_returns_exit_code(runtime: DockerRuntime, make_spec: MakeSpec) -> None:
    spec = make_spec(["sh", "-c", "exit 7"])
    runtime.run(spec)
    assert runtime.wait(spec.name, timeout=30) == 7


@pytest.mark.docker
def test_put_and_get_archive_roundtrip(runtime: DockerRuntime, make_spec: MakeSpec) -> None:
    spec = make_spec()
    runtime.run(spec)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    runtime.put_archive(spec.name, "/", buf.getvalue())  # FROM scratch: no /tmp
    data = b"".join(runtime.get_archive(spec.name, "/hello.txt"))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.extractfile("hello.txt")
        assert member is not None and member.read() == b"hello"


@pytest.mark.docker
def test_unknown_container_maps_to_container_not_found(runtime: DockerRuntime) -> None:
    with pytest.raises(ContainerNotFound) as info:
        runtime.stop("car-no-such-container-x", timeout=1)
    assert info.value.status == 404
    assert runtime.state("car-no-such-container-x") is None


@pytest.mark.docker
def test_duplicate_name_maps_to_runtime_error_with_status(
    runtime: DockerRuntime, make_spec: MakeSpec
) -> None:
    spec = make_spec()
    runtime.run(spec)
    with pytest.raises(ContainerRuntimeError) as info:
        runtime.run(spec)
    assert info.value.status == 409
    assert "Docker refused" in str(info.value)


@pytest.mark.docker
def test_image_queries(runtime: DockerRuntime, busybox_image: str) -> None:
    assert runtime.image_exists(busybox_image)
    assert not runtime.image_exists("car-no-such-image:never")
    assert runtime.image_user(busybox_image) is None
    assert runtime.read_image_file(busybox_image, "/etc/passwd") is None  # FROM scratch
    assert runtime.read_image_file(busybox_image, "/bin/busybox")  # a real file is read


@pytest.mark.docker
def test_ensure_busybox_image_keeps_existing_image(
    runtime: DockerRuntime, busybox_image: str, mocker: Any
) -> None:
    build = mocker.spy(runtime, "build_image")
    assert ensure_busybox_image(runtime) == busybox_image
    build.assert_not_called()


def test_ensure_busybox_image_builds_when_missing(mocker: Any) -> None:
    runtime = DockerRuntime(client=mocker.Mock())
    mocker.patch.object(runtime, "image_exists", return_value=False)
    seen: list[tuple[bool, str]] = []
    mocker.patch.object(
        runtime,
        "build_image",
        side_effect=lambda ctx, tag: seen.append(((ctx / "Dockerfile").is_file(), tag)),
    )
    assert ensure_busybox_image(runtime) == "car-busybox:latest"
    assert seen == [(True, "car-busybox:latest")]  # built once, from a real build context


@pytest.mark.parametrize(
    "exc",
    [
        docker.errors.APIError("boom", explanation="engine says no"),
        docker.errors.DockerException("socket gone"),
        requests.exceptions.ConnectionError("refused"),
    ],
)
def test_engine_failures_become_container_runtime_error(mocker: Any, exc: Exception) -> None:
    client = mocker.Mock()
    client.containers.get.side_effect = exc
    with pytest.raises(ContainerRuntimeError) as info:
        DockerRuntime(client=client).logs("car-x")
    assert info.value.__cause__ is exc
    assert not isinstance(info.value, ContainerNotFound)
