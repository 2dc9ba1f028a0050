"""A provider and a consumer runner, in-process on real Docker and real loop volumes.

Each ``ContainerAppRunnerPlugin`` runs its monitoring loop (``run_once`` every
PROCESS_DELAY, as ``run_forever`` does) on its own thread, so the two sides overlap as
two ``car run`` processes would. The data sits in the provider's FIXED_SIZE_VOLUMES ext4
loop volume; the embedded backends (``file://`` blobs, ``sqlite://`` registry in the
shared data dir) connect the two. ``RigSettings`` picks the snapshot format
(``SYNC.ARCHIVE_FORMAT``), ``KEEP_SNAPSHOTS`` and both volume sizes; instance ids get a
random suffix so that two rigs (a bench and its smoke test) never share a container name.

One *round*: the provider app (busybox, through ``docker exec``) writes
``/app/data/round.txt`` and then ``request.json``, and prints the kernel uptime right
after the rename; the provider runner publishes; the consumer runner applies; the
consumer app, which polls ``round.txt`` every 50 ms, writes ``seen.txt`` with the round
and its uptime as soon as it sees the new data. Uptime (``/proc/uptime``, shared by the
host and every container) is the one clock both apps can read.

``stop_start_seconds()`` times the app's Docker stop + start through the same control
sync uses, before the loops run: the fixed cost inside every downtime.

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

from container_apps.bench.common import median
from container_apps.container_app_runner import ContainerAppRunnerPlugin
from container_apps.layout import DataDir
from container_apps.runner.docker_runtime import DockerRuntime, ensure_busybox_image
from container_apps.runner.runner_config import RunnerConfig
from container_apps.sync.constants import QUARANTINE_FILE

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


@dataclass(frozen=True, slots=True)
class RigSettings:
    """How the two runners are configured (volume sizes in MiB, as FIXED_SIZE_VOLUMES SIZE)."""

    archive_format: str
    provider_volume_mib: int
    consumer_volume_mib: int
    poll_interval: float = 1.0
    keep_snapshots: int = 1


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

    def __init__(self, root: Path, settings: RigSettings, *, log: logging.Logger) -> None:
        self.root = root
        self.data = DataDir(root)
        self.settings = settings
        self.log = log
        self.runtime = DockerRuntime()
        self.image = ensure_busybox_image(self.runtime)
        suffix = uuid.uuid4().hex[:8]
        key = f"bench-{suffix}"
        s = settings
        self.provider = self._runner(
            f"{PROVIDER_ID}-{suffix}", "provider", key, IDLE_SCRIPT, s.provider_volume_mib
        )
        self.consumer = self._runner(
            f"{CONSUMER_ID}-{suffix}", "consumer", key, CONSUMER_SCRIPT, s.consumer_volume_mib
        )
        self._loops: list[_Loop] = []

    def _runner(
        self, instance_id: str, role: str, key: str, script: str, volume_mib: int
    ) -> ContainerAppRunnerPlugin:
        sync: dict[str, Any] = {
            "ENABLED": True,
            "KEY": key,
            "TYPE": role,
            "POLL_INTERVAL": self.settings.poll_interval,
        }
        if role == "provider":
            sync["ARCHIVE_FORMAT"] = self.settings.archive_format
            sync["KEEP_SNAPSHOTS"] = self.settings.keep_snapshots
        raw: dict[str, Any] = {
            "INSTANCE_ID": instance_id,
            "NODE_ID": instance_id,
            "IMAGE": self.image,
            "IMAGE_PULL_POLICY": "never",
            "NETWORK_MODE": "none",
            "CONTAINER_START_COMMAND": ["sh", "-c", script],
            "FIXED_SIZE_VOLUMES": {
                VOLUME: {"SIZE": f"{volume_mib}M", "MOUNTING_POINT": DATA_MOUNT}
            },
            "PROCESS_DELAY": 0.1,
            "STOP_TIMEOUT": 5,
            "SYNC": sync,
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

    def stop_loops(self) -> None:
        """Let each loop finish its current ``run_once`` and end (``run_loops`` resumes)."""
        for loop in self._loops:
            loop.stop.set()
        for loop in self._loops:
            loop.thread.join(timeout=120)
            if loop.thread.is_alive():
                raise RuntimeError(f"{loop.thread.name} loop did not stop within 120 s")
        self._loops.clear()

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

    def stop_start_seconds(self, repeat: int = 5) -> tuple[float, float]:
        """Median seconds of the provider's and the consumer's app stop + start.

        Through the runner's own sync control (confirmed stop and removal, then a new
        container), which is what every snapshot and apply does inside its downtime.
        Only while no loop runs (before ``run_loops``, after ``stop_loops``): a loop
        could act on the app while it is stopped.
        """
        if self._loops:
            raise RuntimeError("stop_start_seconds() must run while the loops are stopped")
        figures = []
        for runner in (self.provider, self.consumer):
            control = runner._container_control()
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                control.stop_confirmed()
                control.start()
                times.append(time.perf_counter() - start)
            figures.append(median(times))
        return figures[0], figures[1]

    @property
    def provider_data(self) -> Path:
        """Host path of the provider's data volume (the mounted ext4 loop volume)."""
        return self.provider.paths.volume_mount(VOLUME)

    @property
    def consumer_data(self) -> Path:
        """Host path of the consumer's data volume."""
        return self.consumer.paths.volume_mount(VOLUME)

    def blob_sizes(self) -> dict[str, int]:
        """Every blob in the shared ``file://`` store and its size (temp files left out)."""
        sizes: dict[str, int] = {}
        for path in self.data.shared_blobs.iterdir():
            if not path.name.startswith("."):
                sizes[path.name] = path.stat().st_size
        return sizes

    def sent_entry(self, cid: str) -> dict[str, Any]:
        """The provider's sent-history entry of ``cid`` (durations of each publish step)."""
        for path in self.provider.paths.history_sent.glob("*.json"):
            entry: dict[str, Any] = json.loads(path.read_text())
            if entry.get("cid") == cid:
                return entry
        raise KeyError(f"no sent history entry for {cid}")

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
            self._raise_if_quarantined(what)
            value = probe()
            if value is not None:
                return value
            time.sleep(0.01)
        raise TimeoutError(f"timed out after {ROUND_TIMEOUT:.0f} s waiting for the {what}")

    def _raise_if_quarantined(self, what: str) -> None:
        """Fail at once, with the consumer's reason, instead of waiting out the timeout."""
        path = self.consumer.paths.sync_state / QUARANTINE_FILE
        try:
            entries = json.loads(path.read_text()).get("entries") or []
        except (OSError, ValueError):
            return
        if entries:
            last = entries[-1]
            raise RuntimeError(
                f"waiting for the {what}: the consumer quarantined {last.get('cid')} "
                f"({last.get('kind')}: {last.get('error')})"
            )

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
