"""AppContainer: the one app container of an instance, as the runner and sync drive it.

It implements ``sync.container_control.ContainerControl``: ``stop_confirmed()`` returns
only once Docker reports the container gone (SPEC §3.3: volume mutation never happens
without a confirmed stop), and ``start()`` runs a new container with the same spec
while every volume stays mounted. Logs are saved before each removal, so a crash or a
sync stop never loses the app's output.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from .docker_runtime import LABEL_DATA_DIR, ContainerSpec, ContainerState, DockerRuntime
from .errors import CarError, ContainerNotFound, ContainerRuntimeError
from .fsutil import atomic_write_bytes

# How long a removal may take to show up in Docker before the stop counts as unconfirmed.
CONFIRM_TIMEOUT = 15.0
CONFIRM_POLL = 0.2


class AppContainer:
    """Start, confirmed stop and inspection of ``spec.name`` through ``DockerRuntime``."""

    def __init__(
        self,
        runtime: DockerRuntime,
        spec: ContainerSpec,
        *,
        stop_timeout: int,
        logs_dir: Path,
        log: logging.Logger,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.runtime = runtime
        self.spec = spec
        self.stop_timeout = stop_timeout
        self.logs_dir = logs_dir
        self.log = log
        self._clock = clock
        self._sleep = sleep

    @property
    def name(self) -> str:
        return self.spec.name

    def start(self) -> None:
        """Run a new container from the current spec (volumes stay as they are).

        Raises:
            ContainerRuntimeError: Docker refused (e.g. a container with the name exists).
        """
        container_id = self.runtime.run(self.spec)
        self.log.info("container %s started (%s)", self.name, container_id[:12])

    def state(self) -> ContainerState | None:
        return self.runtime.state(self.name)

    def is_running(self) -> bool:
        state = self.state()
        return state is not None and state.running

    def get_archive(self, container_path: str) -> Iterator[bytes]:
        return self.runtime.get_archive(self.name, container_path)

    def remove_leftover(self) -> None:
        """Remove a container of this name left by a crashed run of *this* runner.

        Raises:
            ContainerRuntimeError: the name is taken by a container of another data dir
                (or not made by car): it is left alone.
        """
        state = self.state()
        if state is None:
            return
        owner = state.labels.get(LABEL_DATA_DIR)
        if owner != self.spec.data_dir:
            raise ContainerRuntimeError(
                f"container name {self.name} is taken by a container of "
                f"{owner or 'something other than car'}",
                hint="stop that runner, or use another INSTANCE_ID",
            )
        self.log.warning("container %s: removing the leftover of an earlier run", self.name)
        self.stop_confirmed()

    def stop_confirmed(self) -> None:
        """Stop (STOP_TIMEOUT), save logs, remove; return once Docker reports it gone.

        Raises:
            ContainerRuntimeError: the container is still there; volumes must not be
                touched.
        """
        state = self.state()
        if state is None:
            return
        if state.running:
            try:
                self.runtime.stop(self.name, self.stop_timeout)
            except ContainerNotFound:
                return
            except ContainerRuntimeError as exc:  # removal with force still kills it
                self.log.warning("container %s: stop failed, forcing removal: %s", self.name, exc)
        self.save_logs()
        removal_error: ContainerRuntimeError | None = None
        try:
            self.runtime.remove(self.name, force=True)
        except ContainerNotFound:
            pass
        except ContainerRuntimeError as exc:  # e.g. "removal already in progress"
            removal_error = exc
        self._confirm_absent(removal_error)
        self.log.info("container %s stopped and removed", self.name)

    def _confirm_absent(self, removal_error: ContainerRuntimeError | None) -> None:
        deadline = self._clock() + CONFIRM_TIMEOUT
        while True:
            status = self.runtime.status(self.name)
            if status is None:
                return
            if self._clock() >= deadline:
                break
            self._sleep(CONFIRM_POLL)
        reason = f": {removal_error}" if removal_error else ""
        raise ContainerRuntimeError(
            f"container {self.name} is still present ({status}) after stop{reason}",
            hint="check `docker ps -a`; volumes were left untouched",
        ) from removal_error

    def save_logs(self) -> Path | None:
        """Write the container's output to ``logs_dir/<UTC time>.log``; None on failure."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self.logs_dir / f"{stamp}.log"
        try:
            data = self.runtime.logs(self.name)
            self.logs_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, data)
        except ContainerNotFound:
            return None
        except (CarError, OSError) as exc:  # losing logs must not block the stop
            self.log.warning("container %s: could not save logs: %s", self.name, exc)
            return None
        self.log.info("container %s: logs saved to %s", self.name, path)
        return path
