"""The app's output on a real Docker engine: saved while the app runs, in bounded memory,
never read inside a stop (so never inside a sync stop's downtime), and bounded on disk."""

from __future__ import annotations

import contextlib
import logging
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from container_apps.errors import CarError
from container_apps.runner.app_container import AppContainer
from container_apps.runner.app_logs import LogRetention
from container_apps.runner.docker_runtime import ContainerSpec, DockerRuntime
from container_apps.tests.support.servers import wait_until

LOG = logging.getLogger("test.app_container_logs")
LINE = 1000  # bytes per line: Docker's cost is per line, so long lines keep tests quick
TOTAL = 40 * LINE * 1000  # 40 MB of app output
MIB = 1024 * 1024


def _chatty(total: int) -> list[str]:
    """Write ``total`` bytes to stdout in LINE-byte lines, then idle until TERM."""
    script = (
        "trap 'exit 0' TERM; "
        f'yes "$(head -c {LINE - 1} /dev/zero | tr "\\0" x)" | head -c {total}; '
        "sleep 3600 & wait"
    )
    return ["sh", "-c", script]


class SpyRuntime(DockerRuntime):
    """The real runtime, noting when stops, starts and log bytes happen."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, float, int]] = []

    def _note(self, what: str, size: int = 0) -> None:
        self.events.append((what, time.monotonic(), size))

    def stop(self, name: str, timeout: int) -> None:
        self._note("stop")
        super().stop(name, timeout)

    def run(self, spec: ContainerSpec) -> str:
        container_id = super().run(spec)
        self._note("run")
        return container_id

    def logs(self, name: str) -> bytes:
        data = super().logs(name)
        self._note("log", len(data))
        return data

    def log_stream(self, name: str, *, follow: bool) -> Iterator[bytes]:
        for chunk in super().log_stream(name, follow=follow):
            self._note("log", len(chunk))
            yield chunk

    def log_bytes_between(self, first: str, last: str) -> int:
        """Log bytes received after the first ``first`` event and before the last ``last``."""
        start = next(t for what, t, _ in self.events if what == first)
        end = max(t for what, t, _ in self.events if what == last)
        return sum(n for what, t, n in self.events if what == "log" and start <= t <= end)


MakeApp = Callable[..., AppContainer]


@pytest.fixture
def make_app(busybox_image: str, tmp_path: Path) -> Iterator[MakeApp]:
    """``make_app(command, runtime=..., retention=...)``: an AppContainer, removed after."""
    made: list[AppContainer] = []

    def make(
        command: list[str],
        *,
        runtime: DockerRuntime | None = None,
        retention: LogRetention | None = None,
    ) -> AppContainer:
        spec = ContainerSpec(
            instance_id=f"logs-{uuid.uuid4().hex[:10]}",  # other test runs share the engine
            image=busybox_image,
            data_dir=str(tmp_path),
            command=command,
            network_mode="none",
        )
        app = AppContainer(
            runtime or DockerRuntime(),
            spec,
            stop_timeout=2,
            logs_dir=tmp_path / "logs",
            log=LOG,
            log_retention=retention,
        )
        made.append(app)
        return app

    yield make
    for app in made:
        with contextlib.suppress(CarError):
            app.stop_confirmed()
        app.runtime.close()


def _logged_bytes(directory: Path) -> int:
    """Bytes the follower wrote so far (its temp file) plus saved files."""
    if not directory.exists():
        return 0
    return sum(p.stat().st_size for p in directory.iterdir())


def _following_bytes(directory: Path) -> int:
    """Bytes in the follower's temp file (0 before it has any)."""
    return sum(p.stat().st_size for p in directory.glob(".*.tmp")) if directory.exists() else 0


def test_many_megabytes_of_output_are_saved_in_bounded_memory(
    make_app: MakeApp, tmp_path: Path
) -> None:
    app = make_app(_chatty(TOTAL))
    tracemalloc.start()
    try:
        app.start()
        wait_until(lambda: _logged_bytes(tmp_path / "logs") >= TOTAL, 180, "the log follower")
        app.stop_confirmed()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    [saved] = (tmp_path / "logs").iterdir()
    assert saved.name.endswith(".log") and not saved.name.startswith(".")
    assert saved.stat().st_size == TOTAL
    with saved.open("rb") as handle:
        assert handle.read(LINE) == b"x" * (LINE - 1) + b"\n"
    assert peak < 8 * MIB, f"peak traced memory {peak / MIB:.1f} MiB for a {TOTAL // MIB} MiB log"


def test_a_stop_and_start_read_no_log_inside_the_downtime(
    make_app: MakeApp, tmp_path: Path
) -> None:
    # What a sync slice does: confirmed stop, then start of a new container. The app
    # wrote 40 MB earlier; none of it may be read between the stop and the new start.
    spy = SpyRuntime()
    app = make_app(_chatty(TOTAL), runtime=spy)
    app.start()
    wait_until(lambda: _logged_bytes(tmp_path / "logs") >= TOTAL, 180, "the log follower")
    app.spec = replace(app.spec, command=["sh", "-c", "sleep 3600"])
    app.stop_confirmed()
    app.start()
    assert spy.log_bytes_between("stop", "run") == 0
    [saved] = (tmp_path / "logs").glob("*.log")
    assert saved.stat().st_size == TOTAL  # complete, saved while the app ran


def test_leftover_container_output_is_saved_and_stale_temp_files_swept(
    make_app: MakeApp, tmp_path: Path
) -> None:
    app = make_app(["sh", "-c", "echo leftover-output; sleep 3600"])
    app.runtime.run(app.spec)  # a crashed run's container: no follower of ours
    wait_until(lambda: b"leftover" in app.runtime.logs(app.name), 30, "the leftover's output")
    (tmp_path / "logs").mkdir()
    stale = tmp_path / "logs" / ".20260101T000000.000000Z.log.x1y2.tmp"
    stale.write_bytes(b"half a log")
    app.remove_leftover()
    assert app.state() is None and not stale.exists()
    [saved] = (tmp_path / "logs").iterdir()
    assert saved.read_bytes() == b"leftover-output\n"


def test_restarts_keep_only_the_newest_logs(make_app: MakeApp, tmp_path: Path) -> None:
    app = make_app([], retention=LogRetention(keep_files=2, keep_bytes=10 * MIB))
    for run in range(3):
        app.spec = replace(app.spec, command=["sh", "-c", f"echo run-{run}; sleep 3600"])
        app.start()
        wait_until(lambda: _following_bytes(tmp_path / "logs") > 0, 30, f"run {run}'s output")
        app.stop_confirmed()
    kept = sorted((tmp_path / "logs").iterdir())
    assert [p.read_text() for p in kept] == ["run-1\n", "run-2\n"]
