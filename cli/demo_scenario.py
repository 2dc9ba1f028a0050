"""``car demo``: volume-sync end to end on this host, with the embedded backends.

Two ``car run`` processes share one data directory (so the ``file://`` blob store and
the ``sqlite://`` registry connect them with no server to start). The provider app
writes a few MiB into its fixed-size volume and asks for a snapshot; the consumer app
prints a digest of what it sees. The demo waits until the consumer app reports the
provider's digest, prints a report, and removes everything unless ``--keep``.

The apps only use the app-facing contract (request.json, last_apply.json), so this is
also a worked example for app authors.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CarError
from ..layout import DataDir
from ..runner.docker_runtime import DockerRuntime, ensure_busybox_image
from ..sync.chunked_retention import snapshot_blobs
from ..sync.history import HistoryLog

# Instance ids get a per-run suffix, so two demos (or a kept one) never share a container name.
PROVIDER_PREFIX = "demo-provider"
CONSUMER_PREFIX = "demo-consumer"
DATA_MOUNT = "/app/data"
DEMO_FILES = 24  # 256 KiB each: ~6 MiB of incompressible data plus one text file
DEADLINE_SECONDS = 90.0

# Both apps hash the same file set in the same order, so equal digests mean equal bytes.
_DIGEST = (
    f"find {DATA_MOUNT}/docs {DATA_MOUNT}/blobs -type f | sort | xargs cat"
    " | sha256sum | cut -d' ' -f1"
)

REQUEST_JSON = json.dumps(
    {"archive_paths": [f"{DATA_MOUNT}/"], "metadata": {"demo": True}, "request_id": "demo-1"}
)

# The provider writes its data once, then asks once (the marker lives in the control dir,
# which is not synced), and keeps running; `sleep & wait` lets SIGTERM stop it at once.
PROVIDER_SCRIPT = f"""
trap 'exit 0' TERM INT
D={DATA_MOUNT}; S=$R1_VOLUME_SYNC_DIR
if [ ! -f $S/.demo-requested ]; then
  mkdir -p $D/docs $D/blobs
  i=0; while [ $i -lt {DEMO_FILES} ]; do
    head -c 262144 /dev/urandom > $D/blobs/part-$i.bin; i=$((i+1)); done
  echo "hello from the provider" > $D/docs/readme.txt
  echo "PROVIDER-WROTE $({_DIGEST})"
  touch $S/.demo-requested
  printf '%s' '{REQUEST_JSON}' > $S/request.json.tmp
  mv $S/request.json.tmp $R1_SYNC_REQUEST_FILE
fi
while true; do sleep 1 & wait $!; done
"""

# The consumer reports what it sees whenever last_apply.json changes. The runner writes
# last_apply.json after it restarts the app (SPEC §7.5), so an app watches for it.
CONSUMER_SCRIPT = f"""
trap 'exit 0' TERM INT
seen=""
while true; do
  if [ -f $R1_VOLUME_SYNC_DIR/last_apply.json ]; then
    now=$(cat $R1_VOLUME_SYNC_DIR/last_apply.json)
    if [ "$now" != "$seen" ]; then seen=$now; echo "CONSUMER-SEES $({_DIGEST})"; fi
  fi
  sleep 1 & wait $!
done
"""


@dataclass(frozen=True, slots=True)
class DemoReport:
    """What the demo measured."""

    cid: str
    digest: str
    data_bytes: int
    archive_bytes: int
    publish_downtime: float
    apply_downtime: float
    end_to_end: float
    total: float

    def lines(self) -> list[str]:
        mib = 1024 * 1024
        return [
            f"snapshot      {self.cid}",
            f"data          {self.data_bytes / mib:.1f} MiB in {DEMO_FILES + 1} files, "
            f"archive {self.archive_bytes / mib:.1f} MiB",
            f"same bytes    provider and consumer apps both report sha256 {self.digest[:16]}…",
            f"downtime      provider {self.publish_downtime:.2f} s (snapshot), "
            f"consumer {self.apply_downtime:.2f} s (apply)",
            f"end to end    {self.end_to_end:.1f} s from request.json written to consumer app "
            "seeing the data",
            f"demo total    {self.total:.1f} s",
        ]


def runner_config(instance_id: str, role: str, key: str, script: str) -> dict[str, Any]:
    """A runner config for one side of the demo."""
    return {
        "INSTANCE_ID": instance_id,
        "IMAGE": "car-busybox:latest",
        "IMAGE_PULL_POLICY": "never",
        "NETWORK_MODE": "none",
        "CONTAINER_START_COMMAND": ["sh", "-c", script],
        "FIXED_SIZE_VOLUMES": {"appdata": {"SIZE": "32M", "MOUNTING_POINT": DATA_MOUNT}},
        "PROCESS_DELAY": 0.5,
        "STOP_TIMEOUT": 5,
        "SYNC": {"ENABLED": True, "KEY": key, "TYPE": role, "POLL_INTERVAL": 1},
    }


class Demo:
    """One demo run: set up, start two runners, wait for convergence, report, clean up."""

    def __init__(self, data_root: Path | None, *, keep: bool, say: Callable[[str], None]) -> None:
        self.keep = keep
        self.say = say
        self.own_root = data_root is None
        self.root = data_root or Path(tempfile.mkdtemp(prefix="car-demo-"))
        self.data = DataDir(self.root)
        self.runtime = DockerRuntime()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.run_id = uuid.uuid4().hex[:8]
        self.provider_id = f"{PROVIDER_PREFIX}-{self.run_id}"
        self.consumer_id = f"{CONSUMER_PREFIX}-{self.run_id}"
        self.published_cid: str | None = None

    def run(self) -> DemoReport:
        """Run the demo; always stops the runners, and cleans up unless ``keep``."""
        started = time.monotonic()
        try:
            return self._run(started)
        finally:
            self._stop_runners()
            self._clean_up()

    def _run(self, started: float) -> DemoReport:
        self.runtime.ping()
        self.say(f"image         {ensure_busybox_image(self.runtime)} (built locally, offline)")
        self.say(f"data dir      {self.root}")
        key = f"demo-{self.run_id}"
        self._start_runner(self.provider_id, "provider", key, PROVIDER_SCRIPT)
        self._start_runner(self.consumer_id, "consumer", key, CONSUMER_SCRIPT)
        self.say(f"runners       provider and consumer started (SYNC.KEY {key})")
        provider_digest = self._wait_for_log(self.provider_id, "PROVIDER-WROTE ")
        requested_at = self._wait_for_request()
        self.say("request       provider app wrote request.json")
        response = self._wait_for_response()
        self.published_cid = str(response["cid"])
        self.say(f"published     {response['cid']} ({response['archive_size_bytes']} bytes)")
        consumer_digest = self._wait_for_log(self.consumer_id, "CONSUMER-SEES ")
        seen_at = time.monotonic()
        if consumer_digest != provider_digest:
            raise CarError(
                f"consumer app sees sha256 {consumer_digest}, provider wrote {provider_digest}"
            )
        received = self._latest_received()
        return DemoReport(
            cid=response["cid"],
            digest=consumer_digest,
            data_bytes=self._data_bytes(),
            archive_bytes=int(response["archive_size_bytes"]),
            publish_downtime=float(response.get("downtime_seconds") or 0.0),
            apply_downtime=float(received.get("downtime_seconds") or 0.0),
            end_to_end=seen_at - requested_at,
            total=time.monotonic() - started,
        )

    # --- runners ---------------------------------------------------------------------
    def _start_runner(self, instance_id: str, role: str, key: str, script: str) -> None:
        config_dir = self.root / "configs"
        config_dir.mkdir(parents=True, exist_ok=True)
        config_path = config_dir / f"{instance_id}.json"
        config_path.write_text(json.dumps(runner_config(instance_id, role, key, script), indent=2))
        log_path = config_dir / f"{instance_id}.log"
        with open(log_path, "wb") as log_file:
            self.procs[instance_id] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "container_apps",
                    "run",
                    str(config_path),
                    "--data-dir",
                    str(self.root),
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _check_runners(self) -> None:
        for instance_id, proc in self.procs.items():
            if proc.poll() is not None:
                log = (self.root / "configs" / f"{instance_id}.log").read_text(errors="replace")
                tail = "\n".join(log.splitlines()[-15:])
                raise CarError(f"runner {instance_id} exited with {proc.returncode}:\n{tail}")

    def _stop_runners(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _clean_up(self) -> None:
        if self.keep:
            self.say(
                f"kept          {self.root} (runner configs and logs in configs/; "
                f"try `car sync history --data-dir {self.root}`)"
            )
            return
        if self.own_root:
            shutil.rmtree(self.root, ignore_errors=True)
            return
        # Someone else's data dir: remove only what this run made.
        configs = self.root / "configs"
        for instance_id in (self.provider_id, self.consumer_id):
            shutil.rmtree(self.data.instance(instance_id).root, ignore_errors=True)
            for suffix in (".json", ".log"):
                (configs / f"{instance_id}{suffix}").unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # kept when it holds anything else
            configs.rmdir()
        # The blobs are the demo's own (random data, so no other sync set shares their
        # CIDs); the registry keeps a small record under the demo's one-off key.
        if self.published_cid:
            for cid in snapshot_blobs(self.data.shared_blobs, self.published_cid):
                (self.data.shared_blobs / cid).unlink(missing_ok=True)

    # --- waiting ---------------------------------------------------------------------
    def _wait(self, what: str, probe: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while time.monotonic() < deadline:
            self._check_runners()
            value = probe()
            if value:
                return value
            time.sleep(0.1)
        raise CarError(
            f"timed out after {DEADLINE_SECONDS:.0f} s waiting for {what}",
            hint="rerun with --keep and read the runner logs in <data dir>/configs/",
        )

    def _wait_for_log(self, instance_id: str, marker: str) -> str:
        def probe() -> str | None:
            try:
                text = self.runtime.logs(f"car-{instance_id}").decode(errors="replace")
            except CarError:
                return None
            for line in text.splitlines():
                if line.startswith(marker):
                    return line[len(marker) :].strip()
            return None

        return str(self._wait(f"{instance_id} to log {marker.strip()}", probe))

    def _wait_for_request(self) -> float:
        sync_dir = self.data.instance(self.provider_id).volume_sync_dir

        def probe() -> float | None:
            names = ("request.json", "request.json.processing", "response.json")
            return time.monotonic() if any((sync_dir / n).exists() for n in names) else None

        return float(self._wait("the provider's request.json", probe))

    def _wait_for_response(self) -> dict[str, Any]:
        path = self.data.instance(self.provider_id).volume_sync_dir / "response.json"

        def probe() -> dict[str, Any] | None:
            try:
                body = json.loads(path.read_text())
            except (OSError, ValueError):
                return None
            if body.get("status") == "error":
                raise CarError(f"provider answered with an error: {body.get('error')}")
            return body if body.get("status") == "ok" else None

        result: dict[str, Any] = self._wait("the provider's response.json", probe)
        return result

    def _latest_received(self) -> dict[str, Any]:
        latest = HistoryLog(self.data.instance(self.consumer_id).history_received).latest()
        return latest.data if latest is not None else {}

    def _data_bytes(self) -> int:
        mount = self.data.instance(self.consumer_id).volume_mount("appdata")
        return sum(
            os.path.getsize(os.path.join(dirpath, name))
            for dirpath, _, names in os.walk(mount)
            for name in names
        )
