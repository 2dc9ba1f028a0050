"""AppContainer: the one app container of an instance, as the runner and sync drive it.

It implements ``sync.container_control.ContainerControl``: ``stop_confirmed()`` returns
only once Docker reports the container gone (README, "Lifecycle": no volume is changed
without a confirmed stop), and ``start()`` runs a new container with the same spec
while every volume stays mounted.

The app's output is saved to ``logs/`` *while it runs*: ``start()`` gives each container
a log follower (``app_logs``), so a stop, including a sync stop inside the app's
downtime, only waits for the few chunks the follower has not read yet (at most
``LOG_DRAIN_SECONDS``) before the removal, which would cut the stream. Nothing of the
log is read during a stop and it is never held in memory, whatever its size. A
container this runner did not start (a crashed run's leftover) is saved with one
streamed read before its removal, at start, outside any sync downtime.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import ContainerNotFound, ContainerRuntimeError
from .app_logs import ContainerLogs, LogFollower, LogRetention
from .docker_runtime import LABEL_DATA_DIR, ContainerSpec, ContainerState, DockerRuntime

# How long a removal may take to show up in Docker before the stop counts as unconfirmed.
CONFIRM_TIMEOUT = 15.0
CONFIRM_POLL = 0.2
# How long a stop waits for the log follower to catch up before removing the container
# (which cuts the rest of the log): a bound on what logging may add to any downtime.
LOG_DRAIN_SECONDS = 5.0


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
        log_retention: LogRetention | None = None,
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
        self.logs = ContainerLogs(logs_dir, log_retention or LogRetention(), log)
        self._follower: LogFollower | None = None  # of the container this object started

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
        # By id: the stream must never move on to a later container of the same name.
        self._follower = self.logs.follow(self.runtime.log_stream(container_id, follow=True))

    def state(self) -> ContainerState | None:
        return self.runtime.state(self.name)

    def is_running(self) -> bool:
        state = self.state()
        return state is not None and state.running

    def get_archive(self, container_path: str) -> Iterator[bytes]:
        return self.runtime.get_archive(self.name, container_path)

    def remove_leftover(self) -> None:
        """Remove what a crashed run of *this* runner left: log temp files, the container.

        Raises:
            ContainerRuntimeError: the name is taken by a container of another data dir
                (or not made by car): it is left alone.
        """
        self.logs.sweep()
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
        """Stop (STOP_TIMEOUT), finish its log file, remove; return once Docker reports it gone.

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
        self._finish_logs()
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

    def _finish_logs(self) -> None:
        """The stopped container's log file: the follower's, else one streamed read."""
        follower, self._follower = self._follower, None
        if follower is None:  # not started by this object (a leftover): read it now
            self.save_logs()
        elif not follower.wait(LOG_DRAIN_SECONDS):
            self.log.warning(
                "container %s: the log follower had not caught up after %.0f s; the "
                "removal cuts the rest of the log (%s keeps what arrived)",
                self.name,
                LOG_DRAIN_SECONDS,
                follower.path.name,
            )

    def save_logs(self) -> Path | None:
        """Write the container's whole output to ``logs_dir`` now, streamed; None on failure."""
        return self.logs.save(self.runtime.log_stream(self.name, follow=False))
