"""End-to-end helpers: `car run` subprocesses on real Docker, loop volumes and backends.

Each runner is a real ``python -m container_apps run CONFIG --data-dir D`` process with
its own log file, stopped by its PID (SIGTERM, then wait; SIGKILL only as a last resort
in the finalizer). The ``runners`` fixture stops every runner it started and then sweeps
whatever a failed or killed runner left (containers labelled with the data dir, mounts
and loop devices under it), so nothing outlives a test even when it fails. Tests assert
``assert_nothing_left`` themselves after a clean stop: the sweep is only the backstop.

Apps are busybox shell scripts; tests act as the app with ``app_sh`` (``docker exec``
in ``car-<INSTANCE_ID>``), so every check of "what the app sees" runs inside the app's
own container.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from container_apps.layout import DataDir, InstancePaths
from container_apps.tests.support.fixtures_loop import require_loopdev, sweep_loop_leftovers
from container_apps.tests.support.leftovers import leftovers

T = TypeVar("T")

CAR = [sys.executable, "-m", "container_apps"]
DATA_MOUNT = "/app/data"
POLL = 0.1  # seconds between probes of a wait; never a fixed sleep beyond this
DEFAULT_TIMEOUT = 60.0

# The app idles and exits at once on SIGTERM (`sleep & wait` lets the trap run).
IDLE_APP = "trap 'exit 0' TERM INT; while true; do sleep 1 & wait $!; done"

# Prints the boot's view of the data once, then idles: one line per container start.
BOOT_REPORT_APP = (
    "trap 'exit 0' TERM INT; "
    f"if [ -f {DATA_MOUNT}/payload.txt ]; then echo BOOT-HAS-DATA; else echo BOOT-EMPTY; fi; "
    "while true; do sleep 1 & wait $!; done"
)

# Names and content of every file below the data mount, in a stable order: equal
# digests mean the same file set with the same bytes.
DIGEST_SH = (
    f"cd {DATA_MOUNT} && find . -type f | sort | "
    'while read -r f; do echo "== $f"; cat "$f"; done | sha256sum | cut -d" " -f1'
)


def unique(prefix: str) -> str:
    """An instance id / sync key no parallel test session can share."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def base_config(
    instance_id: str,
    role: str | None,
    key: str | None,
    *,
    app: str = IDLE_APP,
    storage: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A fast runner config: small volumes, 1 s polls, short stops."""
    raw: dict[str, Any] = {
        "INSTANCE_ID": instance_id,
        "NODE_ID": f"node-{instance_id}",
        "IMAGE": "car-busybox:latest",
        "IMAGE_PULL_POLICY": "never",
        "NETWORK_MODE": "none",
        "CONTAINER_START_COMMAND": ["sh", "-c", app],
        "FIXED_SIZE_VOLUMES": {"appdata": {"SIZE": "16M", "MOUNTING_POINT": DATA_MOUNT}},
        "PROCESS_DELAY": 0.3,
        "STOP_TIMEOUT": 2,
        "RESTART_BACKOFF_INITIAL": 1,
    }
    if role is not None:
        raw["SYNC"] = {"ENABLED": True, "KEY": key, "TYPE": role, "POLL_INTERVAL": 1}
    if storage is not None:
        raw["STORAGE"] = storage
    raw.update(extra)
    return raw


def read_json(path: Path) -> Any:
    """The parsed file, or None while it is absent or half-written."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@dataclass
class RunnerProcess:
    """One `car run` subprocess: config file, log file, PID."""

    config: dict[str, Any]
    data_dir: Path
    work_dir: Path
    proc: subprocess.Popen[bytes] | None = None
    runs: int = 0
    log_paths: list[Path] = field(default_factory=list)
    cli_args: list[str] = field(default_factory=list)  # more `car run` options
    _terminated: bool = False

    @property
    def instance_id(self) -> str:
        return str(self.config["INSTANCE_ID"])

    @property
    def container(self) -> str:
        return f"car-{self.instance_id}"

    @property
    def paths(self) -> InstancePaths:
        return DataDir(self.data_dir).instance(self.instance_id)

    @property
    def sync_dir(self) -> Path:
        """Host path of the app's /r1en_system/volume-sync."""
        return self.paths.volume_sync_dir

    @property
    def data_mount(self) -> Path:
        return self.paths.volume_mount("appdata")

    def start(self) -> RunnerProcess:
        """Write the config and start `python -m container_apps run` (a new log per run)."""
        assert not self.alive(), f"{self.instance_id} is already running"
        self.work_dir.mkdir(parents=True, exist_ok=True)
        config_path = self.work_dir / f"{self.instance_id}.json"
        config_path.write_text(json.dumps(self.config, indent=2), encoding="utf-8")
        self.runs += 1
        log_path = self.work_dir / f"{self.instance_id}.run{self.runs}.log"
        self.log_paths.append(log_path)
        with open(log_path, "wb") as log_file:
            self.proc = subprocess.Popen(
                [*CAR, "run", str(config_path), "--data-dir", str(self.data_dir), *self.cli_args],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a signal meant for pytest never reaches it
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self, run: int | None = None) -> str:
        """The log of one run (1-based; default: the latest)."""
        if not self.log_paths:
            return ""
        path = self.log_paths[-1 if run is None else run - 1]
        return path.read_text(encoding="utf-8", errors="replace")

    def all_logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.log_paths if p.exists())

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def check_alive(self) -> None:
        """Fail the test (with the log tail) if the runner exited unexpectedly."""
        if self.proc is not None and self.proc.poll() is not None:
            pytest.fail(
                f"runner {self.instance_id} exited with {self.proc.returncode}:\n{self.tail()}"
            )

    def terminate(self) -> None:
        """Send one SIGTERM by PID (a second one would force an exit without cleanup)."""
        assert self.proc is not None
        if self.proc.poll() is None and not self._terminated:
            os.kill(self.proc.pid, signal.SIGTERM)
            self._terminated = True

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM by PID (once), then wait; the exit code."""
        self.terminate()
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"runner {self.instance_id} ignored SIGTERM for {timeout}s:\n{self.tail()}")
        self.proc = None
        self._terminated = False
        return code

    def kill(self) -> None:
        """SIGKILL by PID: a crash, nothing is cleaned up."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None
        self._terminated = False


def wait_until(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    watch: Sequence[RunnerProcess] = (),
) -> T:
    """Poll ``probe`` until it returns a truthy value; fail after ``timeout`` seconds.

    Every runner in ``watch`` must stay alive meanwhile (else fail at once with its log).
    """
    deadline = time.monotonic() + timeout
    while True:
        for runner in watch:
            runner.check_alive()
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            logs = "\n".join(f"--- {r.instance_id}:\n{r.tail()}" for r in watch)
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")
        time.sleep(POLL)


def hold_for(
    what: str,
    condition: Callable[[], bool],
    seconds: float,
    *,
    watch: Sequence[RunnerProcess] = (),
) -> None:
    """Assert ``condition`` holds on every probe for ``seconds`` (an observation window)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for runner in watch:
            runner.check_alive()
        assert condition(), f"{what} stopped holding"
        time.sleep(POLL)


# --- the app's side -------------------------------------------------------------------
def running_container(docker_client: Any, name: str) -> Any | None:
    """The running container ``name``, or None."""
    found = docker_client.containers.list(
        ignore_removed=True, filters={"name": f"^/{name}$", "status": "running"}
    )
    return found[0] if found else None


def app_sh(docker_client: Any, runner: RunnerProcess, script: str) -> str:
    """Run ``script`` inside the runner's app container (waits until it runs); stdout."""

    def attempt() -> tuple[str] | None:
        container = running_container(docker_client, runner.container)
        if container is None:
            return None
        try:
            code, out = container.exec_run(["sh", "-c", script])
        except Exception:  # the container was stopped between list and exec
            return None
        text = out.decode(errors="replace")
        assert code == 0, f"in {runner.container}: {script!r} exited {code}: {text}"
        return (text,)

    return wait_until(f"{runner.container} to run {script[:40]!r}", attempt, watch=[runner])[0]


def request_json(paths: Sequence[str] = (f"{DATA_MOUNT}/",), **fields: Any) -> str:
    return json.dumps({"archive_paths": list(paths), **fields})


def write_request_sh(body: str) -> str:
    """Shell that writes request.json the way an app should: temp file, then rename."""
    quoted = body.replace("'", "'\\''")
    return (
        f"printf '%s' '{quoted}' > $R1_VOLUME_SYNC_DIR/request.json.tmp && "
        "mv $R1_VOLUME_SYNC_DIR/request.json.tmp $R1_SYNC_REQUEST_FILE"
    )


def write_payload_sh(tag: str) -> str:
    """Shell that writes a small, recognisable data set tagged ``tag``."""
    return (
        f"mkdir -p {DATA_MOUNT}/docs {DATA_MOUNT}/bin && "
        f"echo 'payload {tag}' > {DATA_MOUNT}/payload.txt && "
        f"echo 'doc {tag}' > {DATA_MOUNT}/docs/readme.txt && "
        f"head -c 65536 /dev/urandom > {DATA_MOUNT}/bin/random.bin"
    )


def wait_response(
    runner: RunnerProcess, *, status: str = "ok", not_cid: str | None = None
) -> dict[str, Any]:
    """The provider's response.json once it has ``status`` (and a CID other than not_cid)."""
    path = runner.sync_dir / "response.json"

    def probe() -> dict[str, Any] | None:
        body = read_json(path)
        if not isinstance(body, dict) or body.get("status") == "in_progress":
            return None
        if status == "ok" and body.get("status") == "error":
            pytest.fail(f"provider answered with an error: {body}")
        if body.get("status") != status or (not_cid and body.get("cid") == not_cid):
            return None
        return body

    return wait_until(f"{runner.instance_id} response {status}", probe, watch=[runner])


def wait_applied(
    docker_client: Any, runner: RunnerProcess, cid: str, *, timeout: float = DEFAULT_TIMEOUT
) -> dict[str, Any]:
    """last_apply.json names ``cid`` and the app container runs again; last_apply."""

    def probe() -> dict[str, Any] | None:
        last = read_json(runner.sync_dir / "last_apply.json")
        if not isinstance(last, dict) or last.get("cid") != cid:
            return None
        return last if running_container(docker_client, runner.container) else None

    return wait_until(
        f"{runner.instance_id} to apply {cid}", probe, timeout=timeout, watch=[runner]
    )


def history(directory: Path) -> list[dict[str, Any]]:
    """History entries in write order ("latest" = most recently written)."""
    entries = [read_json(p) for p in directory.glob("*.json")]
    return sorted((e for e in entries if isinstance(e, dict)), key=lambda e: e["_written_ns"])


def _events(docker_client: Any, since: float, **filters: str) -> list[dict[str, Any]]:
    """Docker's container events at or after ``since`` (wall clock, ns precision)."""
    events = docker_client.events(
        since=int(since) - 1,
        until=int(time.time()) + 1,
        filters={"type": "container", **filters},
        decode=True,
    )
    return [e for e in events if e.get("timeNano", 0) >= int(since * 1e9)]


def container_starts(docker_client: Any, name: str, since: float) -> list[str]:
    """Ids of every start of container ``name`` since ``since`` (Docker's own events)."""
    return [e["id"] for e in _events(docker_client, since, event="start", container=name)]


def container_events(docker_client: Any, container_id: str, since: float) -> list[str]:
    """Every lifecycle action Docker recorded for ``container_id`` since ``since``."""
    return [str(e.get("Action")) for e in _events(docker_client, since, container=container_id)]


def car(*args: str, data_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m container_apps ARGS`` (``--data-dir`` appended when given)."""
    extra = ["--data-dir", str(data_dir)] if data_dir is not None else []
    return subprocess.run(
        [*CAR, *args, *extra],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def assert_nothing_left(docker_client: Any, *data_dirs: Path) -> None:
    """No container labelled with, mount under, or loop device on an image under them."""
    left = [item for d in data_dirs for item in leftovers(docker_client, d)]
    assert left == [], f"left behind: {left}"


# --- fixtures --------------------------------------------------------------------------
class Runners:
    """Starts `car run` processes for one test and always cleans up after them."""

    def __init__(self, tmp_path: Path, docker_client: Any) -> None:
        self.tmp_path = tmp_path
        self.docker_client = docker_client
        self.made: list[RunnerProcess] = []
        self.data_dirs: set[Path] = set()

    def data_dir(self, name: str = "data") -> Path:
        path = self.tmp_path / name
        path.mkdir(exist_ok=True)
        return path

    def new(self, config: dict[str, Any], data_dir: Path | None = None) -> RunnerProcess:
        data = data_dir or self.data_dir()
        self.data_dirs.add(data)
        runner = RunnerProcess(config, data, self.tmp_path / "runners")
        self.made.append(runner)
        return runner

    def start(self, config: dict[str, Any], data_dir: Path | None = None) -> RunnerProcess:
        return self.new(config, data_dir).start()

    def stop_all(self) -> None:
        """SIGTERM every live runner, then wait for each (they stop in parallel)."""
        live = [r for r in self.made if r.alive()]
        for runner in live:
            runner.terminate()
        for runner in live:
            code = runner.stop()
            assert code == 0, f"{runner.instance_id} exited {code}:\n{runner.tail()}"

    def cleanup(self) -> None:
        """Finalizer: stop (or kill) every runner, then sweep what they left."""
        for runner in self.made:
            with contextlib.suppress(BaseException):
                if runner.alive():
                    runner.stop(timeout=45)
            runner.kill()
        for data in self.data_dirs:
            self._sweep(data)

    def _sweep(self, data: Path) -> None:
        base = str(data.resolve())
        for c in self.docker_client.containers.list(
            all=True, filters={"label": "car.data_dir"}, ignore_removed=True
        ):
            if c.labels.get("car.data_dir", "").startswith(base):
                with contextlib.suppress(Exception):
                    c.remove(force=True)
        # An immutable dir left by a failed halt test would keep its files forever.
        subprocess.run(["chattr", "-R", "-i", base], capture_output=True, check=False)
        sweep_loop_leftovers(data)


@pytest.fixture
def runners(tmp_path: Path, docker_client: Any, busybox_image: str) -> Iterator[Runners]:
    """A ``Runners`` for this test; everything it started is stopped and swept after."""
    require_loopdev()
    made = Runners(tmp_path, docker_client)
    try:
        yield made
    finally:
        made.cleanup()
