"""Peak RSS of publishing and of applying a large snapshot, each in a fresh child process.

The parent generates the data (default 1 GiB) in a plain directory bound as a legacy
volume, writes the app's ``request.json``, then runs one child per step:

- ``publish``: the provider's ``publish_pending`` in the given snapshot format
  (``chunked``: ``ChunkedSnapshotPublisher``, else ``SnapshotPublisher``; stop,
  capture, start, upload to a ``file://`` store, publish to a ``sqlite://`` registry);
- ``apply``: ``SnapshotConsumer.tick`` (read the record, fetch, verify, stage,
  stop, commit, start) into an empty consumer volume.

The container side is ``FakeContainers`` from the test fakes (stop/start only flip a
flag), so the child does nothing but the sync work. Each child prints its ``VmRSS``
before the step (Python and every import loaded) and ``VmHWM`` (peak RSS) after it.

    python -m container_apps.bench.rss publish|apply WORK_DIR FORMAT   # the child side
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from container_apps.bench.common import generate, proc_status_mib
from container_apps.fsutil import atomic_write_json

KEY = "bench-rss"
DATA_MOUNT = "/app/data"


@dataclass(frozen=True, slots=True)
class RssResult:
    """One child's figures, in MiB and seconds."""

    step: str
    before_mib: float
    peak_mib: float
    seconds: float


def _dirs(work: Path) -> dict[str, Path]:
    names: tuple[str, ...] = (
        "provider_vol",
        "provider_ctl",
        "provider_out",
        "provider_hist",
        "consumer_vol",
    )
    names += ("consumer_state", "consumer_ctl", "consumer_hist", "blobs", "cache")
    return {name: work / name for name in names}


def measure(work: Path, mib: int, files: int, fmt: str = "chunked") -> tuple[int, list[RssResult]]:
    """Generate the data under ``work`` and run both children; (data bytes, results)."""
    dirs = _dirs(work)
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    size = generate(dirs["provider_vol"], mib, files, seed=11)
    request = {"archive_paths": [f"{DATA_MOUNT}/"], "request_id": "rss"}
    atomic_write_json(dirs["provider_ctl"] / "request.json", request)
    return size, [_run_child(step, work, fmt) for step in ("publish", "apply")]


def _run_child(step: str, work: Path, fmt: str) -> RssResult:
    proc = subprocess.run(
        [sys.executable, "-m", "container_apps.bench.rss", step, str(work), fmt],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{step} child failed:\n{proc.stderr[-3000:]}")
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    return RssResult(step, float(row["before"]), float(row["peak"]), float(row["seconds"]))


# --- child side ---------------------------------------------------------------------------
def _backends(dirs: dict[str, Path]) -> tuple[Any, Any]:
    from container_apps.registries.factory import open_registry
    from container_apps.stores.factory import open_store
    from container_apps.stores.progress import ProgressStore

    store = ProgressStore(open_store(f"file://{dirs['blobs']}", cache_dir=dirs["cache"]))
    return store, open_registry(f"sqlite://{dirs['blobs'].parent / 'registry.sqlite'}")


def _publisher(dirs: dict[str, Path], fmt: str, log: logging.Logger) -> Any:
    from container_apps.sync.chunked_publish import ChunkedSnapshotPublisher
    from container_apps.sync.control_files import ControlDir
    from container_apps.sync.history import HistoryLog
    from container_apps.sync.paths import PathResolver
    from container_apps.sync.provider import PublisherConfig, PublishTargets, SnapshotPublisher
    from container_apps.tests.support.fakes import FakeContainers
    from container_apps.volumes.binding import VolumeBinding

    store, registry = _backends(dirs)
    resolver = PathResolver([VolumeBinding("data", "legacy", dirs["provider_vol"], DATA_MOUNT)])
    config = PublisherConfig(
        sync_key=KEY,
        node_id="bench-provider",
        work_dir=dirs["provider_out"],
        state_dir=dirs["provider_out"] / "state",
        archive_format=fmt,
    )
    targets = PublishTargets(store, registry, HistoryLog(dirs["provider_hist"]))
    control = ControlDir(dirs["provider_ctl"], "bench-provider", log=log)
    kind = ChunkedSnapshotPublisher if fmt == "chunked" else SnapshotPublisher
    return kind(config, control, resolver, FakeContainers(), targets, log=log)


def _consumer(dirs: dict[str, Path], log: logging.Logger) -> Any:
    from container_apps.sync.consumer import ConsumerSettings, SnapshotConsumer
    from container_apps.sync.paths import PathResolver
    from container_apps.sync.record_source import RecordSource
    from container_apps.tests.support.fakes import FakeContainers
    from container_apps.volumes.binding import VolumeBinding

    store, registry = _backends(dirs)
    resolver = PathResolver([VolumeBinding("data", "legacy", dirs["consumer_vol"], DATA_MOUNT)])
    settings = ConsumerSettings(dirs["consumer_state"], dirs["consumer_ctl"], dirs["consumer_hist"])
    source = RecordSource(registry, KEY, 60.0, log)
    return SnapshotConsumer(settings, source, store, FakeContainers(), resolver, log)


def child(step: str, work: Path, fmt: str) -> dict[str, Any]:
    """Run one step in this (fresh) process; return its figures."""
    logging.basicConfig(level=logging.WARNING)
    log = logging.getLogger(f"bench.rss.{step}")
    dirs = _dirs(work)
    actor = _publisher(dirs, fmt, log) if step == "publish" else _consumer(dirs, log)
    before = proc_status_mib("VmRSS")
    start = time.perf_counter()
    outcome = actor.publish_pending(time.time()) if step == "publish" else actor.tick(time.time())
    seconds = time.perf_counter() - start
    ok = outcome is not None and (outcome.status == "ok" if step == "publish" else outcome.applied)
    if not ok:
        raise SystemExit(f"{step} did not succeed: {outcome}")
    return {"before": before, "peak": proc_status_mib("VmHWM"), "seconds": seconds}


if __name__ == "__main__":
    print(json.dumps(child(sys.argv[1], Path(sys.argv[2]), sys.argv[3])))
