"""The change row: one file changed in a large data set, chunked snapshots vs restic.

Default shape (the target's): 1 GiB in 1,024 files (half random, half text), one 1 MiB file
(a random one, so the change does not compress away) overwritten in place. A chunked
``SyncRig`` whose consumer volume is 1.6 x the data (1.6 GiB for 1 GiB: too small for
a second copy of everything) publishes and applies the first snapshot, then the one
after the change. Measured:

- bytes the second publish added to the ``file://`` blob store (blobs that were not
  there before it: new packs and the index), against the first snapshot's bytes;
- restic backing up the same two states into a local repository: its growth and its
  seconds, beside ours (the change publish's capture + upload, from the sent history);
- provider and consumer downtime of the change, against the apps' Docker stop + start
  timed on the same runners (loops paused) before each of the two rounds;
- that the consumer applied it: its copy of the changed file equals the provider's;
- end-to-end (request written -> consumer app saw the data) against POLL_INTERVAL plus
  twice the put + get of what changed through a fresh ``file://`` store.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from container_apps.bench.common import generate, median, tree_bytes
from container_apps.bench.full import volume_mib
from container_apps.bench.restic_peer import ResticPeer
from container_apps.bench.rig import RigSettings, RoundResult, SyncRig
from container_apps.stores.factory import open_store

CONSUMER_VOLUME_FACTOR = 1.6


@dataclass(frozen=True, slots=True)
class ResticFigures:
    version: str
    first_bytes: int
    growth_bytes: int
    first_s: float
    change_s: float


@dataclass(frozen=True, slots=True)
class ChangeFigures:
    """What the change row reports (bytes, seconds)."""

    data_bytes: int
    files: int
    changed_bytes: int
    consumer_volume_mib: int
    provider_stop_start: float
    consumer_stop_start: float
    first: RoundResult
    change: RoundResult
    first_store_bytes: int
    added_bytes: int
    added_index_bytes: int  # of added_bytes, the new index blob; the rest are packs
    added_blobs: int
    publish_s: float  # capture + upload of the change
    transfer_s: float  # put + get of what the change added
    applied: bool
    restic: ResticFigures


def measure_change(
    work: Path,
    mib: int,
    files: int,
    *,
    poll: float,
    log: logging.Logger,
    say: Callable[[str], None],
) -> ChangeFigures:
    """The module docstring's measurement; the rig is always closed."""
    consumer_mib = round(mib * CONSUMER_VOLUME_FACTOR)
    settings = RigSettings(
        archive_format="chunked",
        provider_volume_mib=volume_mib(mib, 1.25),
        consumer_volume_mib=consumer_mib,
        poll_interval=poll,
    )
    rig = SyncRig(work / "rig-change", settings, log=log)
    restic = ResticPeer(work / "restic")
    try:
        rig.start()
        data = rig.provider_data / "data"
        say(f"change row: {mib} MiB in {files} files, consumer volume {consumer_mib} MiB")
        generate(data, mib, files)
        os.sync()
        stop_start = [rig.stop_start_seconds()]
        rig.run_loops()
        say("change row: first chunked snapshot, then restic backup of the same state")
        first = rig.round("change-first")
        before = rig.blob_sizes()
        restic.init()
        restic_first_s = restic.backup(data)
        restic_first = restic.repo_bytes()
        changed = change_one_file(data)
        rig.stop_loops()  # stop + start timed again right before the round it is compared to
        stop_start.append(rig.stop_start_seconds())
        rig.run_loops()
        say(f"change row: {changed.relative_to(data)} changed; snapshot, then restic backup")
        change = rig.round("change")
        added = {cid: size for cid, size in rig.blob_sizes().items() if cid not in before}
        restic_change_s = restic.backup(data)
        durations = rig.sent_entry(change.cid)["durations"]
        return ChangeFigures(
            data_bytes=tree_bytes(data)[0],
            files=files,
            changed_bytes=changed.stat().st_size,
            consumer_volume_mib=consumer_mib,
            provider_stop_start=median([p for p, _ in stop_start]),
            consumer_stop_start=median([c for _, c in stop_start]),
            first=first,
            change=change,
            first_store_bytes=sum(before.values()),
            added_bytes=sum(added.values()),
            added_index_bytes=added.get(change.cid, 0),
            added_blobs=len(added),
            publish_s=float(durations["archive"]) + float(durations["upload"]),
            transfer_s=put_get_seconds(rig.data.shared_blobs, list(added), work / "transfer"),
            applied=same_bytes(changed, rig.consumer_data / changed.relative_to(rig.provider_data)),
            restic=ResticFigures(
                version=restic.version(),
                first_bytes=restic_first,
                growth_bytes=restic.repo_bytes() - restic_first,
                first_s=restic_first_s,
                change_s=restic_change_s,
            ),
        )
    finally:
        rig.close()


def change_one_file(data: Path) -> Path:
    """Overwrite one random-content file in place with new random bytes; return it.

    ``generate`` writes random content to odd-numbered files; the middle one is taken.
    """
    candidates = sorted(p for p in data.rglob("f*.bin") if int(p.stem[1:]) % 2)
    path = candidates[len(candidates) // 2]
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.write(os.urandom(size))
    os.sync()
    return path


def same_bytes(a: Path, b: Path) -> bool:
    """True when both files exist and hold the same bytes."""
    try:
        return _sha256(a) == _sha256(b)
    except FileNotFoundError:
        return False


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def put_get_seconds(blobs: Path, cids: list[str], work: Path, repeat: int = 3) -> float:
    """Median seconds of put + get of ``cids`` (from ``blobs``) through a fresh store."""
    times = []
    for i in range(repeat):
        store = open_store(f"file://{work / f'blobs-{i}'}", cache_dir=work / "cache")
        start = time.perf_counter()
        for cid in cids:
            store.get(store.put(blobs / cid), sha256=None)
        times.append(time.perf_counter() - start)
    shutil.rmtree(work, ignore_errors=True)
    return median(times)
