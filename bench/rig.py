"""A provider and a consumer runner, in-process on real Docker and real loop volumes.

Each ``ContainerAppRunnerPlugin`` runs its monitoring loop (``run_once`` every
PROCESS_DELAY, as ``run_forever`` does) on its own thread, so the two sides overlap as
two ``car run`` processes would. The data sits in the provider's FIXED_SIZE_VOLUMES ext4
loop volume; the embedded backends (``file://`` blobs, ``sqlite://`` registry in the
shared data dir) connect the two.

One *round*: the provider app (busybox, through ``docker exec``) writes
``/app/data/round.txt`` and then ``request.json``, and prints the kernel uptime right
after the rename; the provider runner publishes; the consumer runner applies; the
consumer app, which polls ``round.txt`` every 50 ms, writes ``seen.txt`` with the round
and its uptime as soon as it sees the new data. Uptime (``/proc/uptime``, shared by the
host and every container) is the one clock both apps can read.

``close()`` stops both threads and both runners: containers removed, volumes unmounted,
loop devices detached (the data dir itself is the caller's to remove).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from container_apps.container_app_runner import ContainerAppRunnerPlugin
from container_apps.layout import DataDir
from container_apps.runner.docker_runtime import DockerRuntime, ensure_busybox_image
from container_apps.runner.runner_config import RunnerConfig

PROVIDER_ID = "bench-provider"
CONSUMER_ID = "bench-consumer"
DATA_MOUNT = "/app/data"
VOLUME = "appdata"
ROUND_TIMEOUT = 180.0

IDLE_SCRIPT = "trap 'exit 0' TERM INT; while true; do sleep 1 & wait $!; done"

# The consumer app reports what it sees; it starts again after every apply, so the
# first check of a new container run already sees the applied data.
CONSUMER_SCRIPT = f"""
trap 'exit 0' TERM INT
S=$R1_VOLUME_SYNC_DIR; seen=""
while true; do
  r=$(cat {DATA_MOUNT}/round.txt 2>/dev/null)
  if [ -n "$r" ] && [ "$r" != "$seen" ]; then
    seen=$r; echo "$r $(cut -d' ' -f1 /proc/uptime)" > $S/seen.tmp && mv $S/seen.tmp $S/seen.txt
  fi
  sleep 0.05 & wait $!
done
"""


def request_script(round_id: str) -> str:
    """What the provider app runs to ask for a snapshot (as an app author would)."""
    body = json.dumps(
        {"archive_paths": [f"{DATA_MOUNT}/"], "request_id": round_id, "metadata": {"bench": True}}
    )
    return (
        f"echo {round_id} > {DATA_MOUNT}/round.txt && S=$R1_VOLUME_SYNC_DIR && "
        f"printf '%s' '{body}' > $S/request.json.tmp && mv $S/request.json.tmp $S/request.json"
        " && cut -d' ' -f1 /proc/uptime"
    )


def uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


@dataclass(frozen=True, slots=True)
class RoundResult:
    """One publish + apply, as the runners and the apps reported it."""

    round_id: str
    provider_downtime: float  # response.json downtime_seconds
    consumer_downtime: float  # received history downtime_seconds
    end_to_end: float  # request.json written -> consumer app saw round.txt
    cid: str
    archive_bytes: int


class _Loop:
    """A runner's monitoring loop on a thread (``run_forever`` without signal handling)."""

    def __init__(self, runner: ContainerAppRunnerPlugin) -> None:
        self.runner = runner
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=runner.config.instance_id)

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                self.runner.run_once(time.monotonic())
                self.stop.wait(self.runner.config.process_delay)
        except BaseException as exc:  # reported by the rig's waits
            self.error = exc


class SyncRig:
    """Two runners sharing one data dir; see the module docstring."""

    def __init__(
        self, root: Path, *, data_mib: int, poll_interval: float, log: logging.Logger
    ) -> None:
        self.root = root
        self.data = DataDir(root)
        self.poll_interval = poll_interval
        self.log = log
        self.runtime = DockerRuntime()
        self.image = ensure_busybox_image(self.runtime)
        key = f"bench-{uuid.uuid4().hex[:8]}"
        # The consumer holds the old and the new copy while it commits (backups).
        self.provider = self._runner(PROVIDER_ID, "provider", key, IDLE_SCRIPT, data_mib * 5 // 4)
        self.consumer = self._runner(
            CONSUMER_ID, "consumer", key, CONSUMER_SCRIPT, data_mib * 5 // 2
        )
        self._loops: list[_Loop] = []

    def _runner(
        self, instance_id: str, role: str, key: str, script: str, volume_mib: int
    ) -> ContainerAppRunnerPlugin:
        raw: dict[str, Any] = {
            "INSTANCE_ID": instance_id,
            "NODE_ID": instance_id,
            "IMAGE": self.image,
            "IMAGE_PULL_POLICY": "never",
            "NETWORK_MODE": "none",
            "CONTAINER_START_COMMAND": ["sh", "-c", script],
            "FIXED_SIZE_VOLUMES": {
                VOLUME: {"SIZE": f"{volume_mib + 64}M", "MOUNTING_POINT": DATA_MOUNT}
            },
            "PROCESS_DELAY": 0.1,
            "STOP_TIMEOUT": 5,
            "SYNC": {
                "ENABLED": True,
                "KEY": key,
                "TYPE": role,
                "POLL_INTERVAL": self.poll_interval,
            },
        }
        log = self.log.getChild(instance_id)
        return ContainerAppRunnerPlugin(RunnerConfig.parse(raw), self.data, log=log)

    # --- life cycle -----------------------------------------------------------------
    def start(self) -> None:
        """Start both runners (containers up, volumes mounted); loops not yet running."""
        self.provider.start()
        self.consumer.start()

    def run_loops(self) -> None:
        for runner in (self.provider, self.consumer):
            loop = _Loop(runner)
            self._loops.append(loop)
            loop.thread.start()

    def close(self) -> None:
        """Stop the loops, then both runners (each step runs even if one fails)."""
        for loop in self._loops:
            loop.stop.set()
        for loop in self._loops:
            loop.thread.join(timeout=120)
        errors: list[str] = []
        for runner in (self.consumer, self.provider):
            try:
                runner.stop()
            except Exception as exc:
                errors.append(f"{runner.config.instance_id}: {exc}")
        self.runtime.close()
        if errors:
            raise RuntimeError("rig clean-up incomplete: " + "; ".join(errors))

    @property
    def provider_data(self) -> Path:
        """Host path of the provider's data volume (the mounted ext4 loop volume)."""
        return self.provider.paths.volume_mount(VOLUME)

    # --- one round --------------------------------------------------------------------
    def round(self, round_id: str) -> RoundResult:
        """Ask for one snapshot and wait until the consumer app sees it."""
        code, out = self.runtime.client.containers.get(self.provider.app.name).exec_run(
            ["sh", "-c", request_script(round_id)]
        )
        if code != 0:
            raise RuntimeError(f"provider app could not write request.json: {out!r}")
        written = float(out.decode().split()[-1])
        seen_file = self.consumer.paths.volume_sync_dir / "seen.txt"
        seen = self._wait(
            f"consumer app to see round {round_id}", lambda: _seen(seen_file, round_id)
        )
        response = self._wait("provider response", lambda: self._response(round_id))
        cid = str(response["cid"])
        received = self._wait("consumer history", lambda: self._received(cid))
        return RoundResult(
            round_id=round_id,
            provider_downtime=float(response["downtime_seconds"]),
            consumer_downtime=float(received["downtime_seconds"]),
            end_to_end=seen - written,
            cid=cid,
            archive_bytes=int(response["archive_size_bytes"]),
        )

    def _wait(self, what: str, probe: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + ROUND_TIMEOUT
        while time.monotonic() < deadline:
            for loop in self._loops:
                if loop.error is not None:
                    raise RuntimeError(f"{loop.thread.name} loop failed: {loop.error!r}")
            value = probe()
            if value is not None:
                return value
            time.sleep(0.01)
        raise TimeoutError(f"timed out after {ROUND_TIMEOUT:.0f} s waiting for the {what}")

    def _response(self, round_id: str) -> dict[str, Any] | None:
        path = self.provider.paths.volume_sync_dir / "response.json"
        try:
            body: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if body.get("request_id") != round_id:
            return None
        if body.get("status") == "error":
            raise RuntimeError(f"provider answered with an error: {body}")
        return body if body.get("status") == "ok" else None

    def _received(self, cid: str) -> dict[str, Any] | None:
        for path in self.consumer.paths.history_received.glob("*.json"):
            try:
                entry: dict[str, Any] = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if entry.get("cid") == cid and entry.get("downtime_seconds") is not None:
                return entry
        return None


def _seen(path: Path, round_id: str) -> float | None:
    try:
        parts = path.read_text().split()
    except OSError:
        return None
    return float(parts[1]) if len(parts) == 2 and parts[0] == round_id else None
