"""Test fakes for the runner side of sync: FakeContainers (ContainerControl) and FakeClock.

``FakeContainers`` records every call in ``calls`` (shared with other recorders through
``journal`` so a test can assert the order of stop/start against store and registry
calls) and fails on demand: ``fail_stop``/``fail_start`` hold the exception to raise.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from container_apps.errors import ContainerRuntimeError


class FakeClock:
    """A wall clock the test moves by hand; callable like ``time.time``."""

    def __init__(self, start: float = 1_764_300_000.25) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeContainers:
    """ContainerControl with a recorded call order and injectable failures."""

    def __init__(self, journal: list[str] | None = None, *, running: bool = True) -> None:
        self.calls: list[str] = journal if journal is not None else []
        self.running = running
        self.fail_stop: BaseException | None = None
        self.fail_start: BaseException | None = None
        self.archives: dict[str, list[bytes]] = {}
        self.on_stop: Any = None  # optional callback run after a successful stop

    def stop_confirmed(self) -> None:
        self.calls.append("stop")
        if self.fail_stop is not None:
            raise self.fail_stop
        self.running = False
        if self.on_stop is not None:
            self.on_stop()

    def start(self) -> None:
        self.calls.append("start")
        if self.fail_start is not None:
            raise self.fail_start
        self.running = True

    def is_running(self) -> bool:
        return self.running

    def get_archive(self, container_path: str) -> Iterator[bytes]:
        self.calls.append(f"get_archive {container_path}")
        if container_path not in self.archives:
            raise ContainerRuntimeError(f"no such path in container: {container_path}", status=404)
        return iter(self.archives[container_path])

    @property
    def stops(self) -> int:
        return self.calls.count("stop")

    @property
    def starts(self) -> int:
        return self.calls.count("start")
