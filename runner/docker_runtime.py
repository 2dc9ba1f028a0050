"""The Docker boundary: the only module that imports ``docker`` (STYLE G7).

``ContainerSpec`` says what to run, in one frozen object with one ``to_docker_kwargs()``
(name, labels and ``network_mode`` are set in exactly one place). ``DockerRuntime``
offers the typed operations the runner needs and translates every docker-py/requests
failure into ``ContainerNotFound`` / ``ContainerRuntimeError`` (with the HTTP status and
Docker's explanation), keeping the cause with ``raise ... from``.
"""

from __future__ import annotations

import contextlib
import io
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions

from ..errors import ContainerNotFound, ContainerRuntimeError
from ..volumes.binding import VolumeBinding
from .busybox_image import BUSYBOX_IMAGE_TAG, write_build_context

LABEL_MANAGED = "car.managed"
LABEL_INSTANCE = "car.instance"
LABEL_DATA_DIR = "car.data_dir"
DOCKER_HINT = "is dockerd running? try `docker info`"


@dataclass(frozen=True)
class ContainerSpec:
    """Everything needed to (re)create the app container with the same spec.

    Attributes:
        instance_id: names the container ``car-<instance_id>`` and labels it.
        data_dir: the runner data dir; labelled so leaked containers can be traced.
    """

    instance_id: str
    image: str
    data_dir: str
    command: str | list[str] | None = None
    entrypoint: str | list[str] | None = None
    user: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    bindings: tuple[VolumeBinding, ...] = ()
    network_mode: str = "bridge"
    cpu: float | None = None
    memory: str | None = None
    ports: Mapping[str, int | None] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"car-{self.instance_id}"

    @property
    def labels(self) -> dict[str, str]:
        return {
            LABEL_MANAGED: "true",
            LABEL_INSTANCE: self.instance_id,
            LABEL_DATA_DIR: self.data_dir,
        }

    def to_docker_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for docker-py's ``containers.run``."""
        kwargs: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "command": self.command,
            "entrypoint": self.entrypoint,
            "user": self.user,
            "environment": dict(self.env),
            "volumes": dict(b.to_docker_bind() for b in self.bindings),
            "network_mode": self.network_mode,
            "labels": self.labels,
            "detach": True,
        }
        if self.cpu is not None:
            kwargs["nano_cpus"] = int(self.cpu * 1e9)
        if self.memory is not None:
            kwargs["mem_limit"] = self.memory
        if self.ports:
            kwargs["ports"] = dict(self.ports)
        return {k: v for k, v in kwargs.items() if v is not None}


@dataclass(frozen=True)
class ContainerState:
    """What Docker reports about a container: ``status`` ("running", "exited", ...)."""

    status: str
    exit_code: int | None
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.status in ("running", "restarting")


@contextlib.contextmanager
def _translated(what: str) -> Iterator[None]:
    """Turn docker-py and transport errors into our error tree."""
    try:
        yield
    except docker.errors.NotFound as exc:
        raise ContainerNotFound(
            f"{what}: not found ({exc.explanation or exc})", status=exc.status_code
        ) from exc
    except docker.errors.APIError as exc:
        raise ContainerRuntimeError(
            f"{what}: Docker refused: {exc.explanation or exc}", status=exc.status_code
        ) from exc
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise ContainerRuntimeError(f"{what}: {exc}", hint=DOCKER_HINT) from exc


class DockerRuntime:
    """Typed Docker operations for one runner; every failure is a ContainerRuntimeError."""

    def __init__(self, client: Any = None, *, timeout: int = 60) -> None:
        self._client = client
        self._timeout = timeout

    @property
    def client(self) -> Any:
        """The docker-py client, connected on first use."""
        if self._client is None:
            with _translated("connect to Docker"):
                self._client = docker.from_env(timeout=self._timeout)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def ping(self) -> None:
        """Raises: ContainerRuntimeError: the engine does not answer."""
        with _translated("ping Docker"):
            self.client.ping()

    # --- images -----------------------------------------------------------------------
    def image_exists(self, ref: str) -> bool:
        try:
            with _translated(f"inspect image {ref}"):
                self.client.images.get(ref)
        except ContainerNotFound:
            return False
        return True

    def pull(self, ref: str) -> None:
        """Pull ``ref`` from its registry. Raises: ContainerRuntimeError."""
        with _translated(f"pull image {ref}"):
            self.client.images.pull(ref)

    def build_image(self, context_dir: Path, tag: str) -> None:
        """Build ``context_dir`` (with its Dockerfile) as ``tag``. Raises: ContainerRuntimeError."""
        with _translated(f"build image {tag}"):
            self.client.images.build(path=str(context_dir), tag=tag, rm=True)

    def image_user(self, ref: str) -> str | None:
        """The image's ``USER`` (e.g. "1000:1000", "app"), or None when unset."""
        with _translated(f"inspect image {ref}"):
            image = self.client.images.get(ref)
        user = image.attrs.get("Config", {}).get("User") or ""
        return user or None

    def read_image_file(self, ref: str, path: str) -> bytes | None:
        """A file's bytes from ``ref``'s filesystem (via a created, never started,
        container), or None if the image has no such file."""
        with _translated(f"read {path} from image {ref}"):
            container = self.client.containers.create(
                ref, command=["true"], network_mode="none", labels={LABEL_MANAGED: "true"}
            )
        try:
            with _translated(f"read {path} from image {ref}"):
                stream, _ = container.get_archive(path)
                data = b"".join(stream)
        except ContainerNotFound:
            return None
        finally:
            with contextlib.suppress(docker.errors.DockerException):
                container.remove(force=True)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            member = tar.next()
            extracted = tar.extractfile(member) if member is not None else None
            return extracted.read() if extracted is not None else None

    # --- containers ---------------------------------------------------------------------
    def run(self, spec: ContainerSpec) -> str:
        """Create and start a container from ``spec``; return its id."""
        with _translated(f"run container {spec.name}"):
            container = self.client.containers.run(**spec.to_docker_kwargs())
        return str(container.id)

    def state(self, name: str) -> ContainerState | None:
        """The container's state, or None when no such container exists."""
        try:
            with _translated(f"inspect container {name}"):
                container = self.client.containers.get(name)
        except ContainerNotFound:
            return None
        state = container.attrs.get("State", {})
        code = state.get("ExitCode")
        labels = container.attrs.get("Config", {}).get("Labels") or {}
        return ContainerState(status=str(container.status), exit_code=code, labels=labels)

    def status(self, name: str) -> str | None:
        """Docker's status string ("running", "exited", ...), or None when absent."""
        state = self.state(name)
        return state.status if state is not None else None

    def stop(self, name: str, timeout: int) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` s. Raises: ContainerNotFound, ..."""
        with _translated(f"stop container {name}"):
            self.client.containers.get(name).stop(timeout=timeout)

    def remove(self, name: str, *, force: bool = False) -> None:
        """Remove the container. Raises: ContainerNotFound, ContainerRuntimeError."""
        with _translated(f"remove container {name}"):
            self.client.containers.get(name).remove(force=force)

    def wait(self, name: str, timeout: float) -> int:
        """Block until the container exits; return its exit code."""
        with _translated(f"wait for container {name}"):
            result = self.client.containers.get(name).wait(timeout=timeout)
        return int(result.get("StatusCode", -1))

    def logs(self, name: str) -> bytes:
        """Everything the container wrote to stdout and stderr, in memory: for short
        outputs only (the demo's probes); saving a log uses ``log_stream``."""
        with _translated(f"read logs of container {name}"):
            return bytes(self.client.containers.get(name).logs(stdout=True, stderr=True))

    def log_stream(self, name: str, *, follow: bool) -> Iterator[bytes]:
        """The container's stdout and stderr as chunks, in bounded memory.

        A generator: Docker is asked on the first ``next()``, so the thread that reads
        does the waiting. With ``follow`` it goes on until the container stops.
        """
        with _translated(f"read logs of container {name}"):
            container = self.client.containers.get(name)
            yield from container.logs(stdout=True, stderr=True, stream=True, follow=follow)

    def get_archive(self, name: str, path: str) -> Iterator[bytes]:
        """A tar stream of ``path`` inside the container."""
        with _translated(f"get archive {path} from container {name}"):
            stream, _ = self.client.containers.get(name).get_archive(path)
        return _translated_stream(stream, f"get archive {path} from container {name}")

    def put_archive(self, name: str, path: str, data: bytes) -> None:
        """Extract the tar ``data`` at ``path`` inside the container."""
        with _translated(f"put archive at {path} in container {name}"):
            ok = self.client.containers.get(name).put_archive(path, data)
        if not ok:
            raise ContainerRuntimeError(f"put archive at {path} in container {name}: refused")


def _translated_stream(stream: Iterator[bytes], what: str) -> Iterator[bytes]:
    # The transfer happens while the caller iterates, so errors surface here, not above.
    with _translated(what):
        yield from stream


def ensure_busybox_image(runtime: DockerRuntime) -> str:
    """Build the offline ``car-busybox:latest`` test image unless it exists; return its tag.

    Raises:
        CarError: no static busybox on the host (with the apt-get hint).
        ContainerRuntimeError: the build failed.
    """
    if not runtime.image_exists(BUSYBOX_IMAGE_TAG):
        with tempfile.TemporaryDirectory(prefix="car-busybox-") as tmp:
            runtime.build_image(write_build_context(Path(tmp)), BUSYBOX_IMAGE_TAG)
    return BUSYBOX_IMAGE_TAG
