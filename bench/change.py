"""The change row: one file changed in a large data set, chunked snapshots vs restic.

Default shape (the target's): 1 GiB in 1,024 files (half random, half text). A chunked
``SyncRig`` whose consumer volume is 1.6 x the data (1.6 GiB for 1 GiB: too small for
a second copy of everything) publishes and applies the first snapshot, and restic backs
the same state up into a local repository. Then, ``rounds`` times, one 1 MiB file (a
different random one each round, so the change does not compress away) is overwritten
in place, the apps' Docker stop + start is timed on the same runners (loops paused),
and the change is published and applied, then backed up by restic. Per round:

- bytes the publish added to the ``file://`` blob store (blobs that were not there
  before it: new packs and the index), against the first snapshot's bytes, and against
  what restic's repository grew by for the same change;
- provider and consumer downtime, against that round's stop + start;
- seconds of our capture + upload (sent history) beside restic's backup;
- that the consumer applied it: its copy of the changed file equals the provider's;
- end-to-end (request written -> consumer app saw the data) and the put + get of what
  the change added through a fresh ``file://`` store.

The table shows medians over the rounds: one round's downtime moves by a few tenths of
a second with the machine's load, which is the size of the target's slack.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from container_apps.bench.common import generate, median, tree_bytes
from container_apps.bench.full import volume_mib
from container_apps.bench.restic_peer import ResticPeer
from container_apps.bench.rig import RigSettings, RoundResult, SyncRig
from container_apps.stores.factory import open_store

CONSUMER_VOLUME_FACTOR = 1.6


@dataclass(frozen=True, slots=True)
class ChangeRound:
    """One change, published, applied and backed up by restic (bytes, seconds)."""

    changed_bytes: int
    result: RoundResult
    provider_stop_start: float
    consumer_stop_start: float
    added_bytes: int
    added_index_bytes: int  # of added_bytes, the new index blob; the rest are packs
    added_blobs: int
    publish_s: float  # capture + upload, from the sent history
    transfer_s: float  # put + get of what the change added
    applied: bool
    restic_growth_bytes: int
    restic_s: float


@dataclass(slots=True)
class ChangeFigures:
    """The first snapshot and every change round."""

    data_bytes: int
    files: int
    consumer_volume_mib: int
    first: RoundResult | None = None
    first_store_bytes: int = 0
    restic_version: str = ""
    restic_first_bytes: int = 0
    restic_first_s: float = 0.0
    rounds: list[ChangeRound] = field(default_factory=list)

    def med(self, value: Callable[[ChangeRound], float]) -> float:
        """Median of ``value`` over the change rounds."""
        return median([value(r) for r in self.rounds])


def measure_change(
    work: Path,
    mib: int,
    files: int,
    *,
    rounds: int,
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
        figures = ChangeFigures(tree_bytes(data)[0], files, consumer_mib)
        rig.run_loops()
        say("change row: first chunked snapshot, then restic backup of the same state")
        figures.first = rig.round("change-first")
        figures.first_store_bytes = sum(rig.blob_sizes().values())
        restic.init()
        figures.restic_first_s = restic.backup(data)
        figures.restic_first_bytes = restic.repo_bytes()
        figures.restic_version = restic.version()
        for i in range(rounds):
            say(f"change row: round {i + 1}/{rounds}")
            figures.rounds.append(change_round(rig, restic, data, i, work / "transfer"))
        return figures
    finally:
        rig.close()


def change_round(rig: SyncRig, restic: ResticPeer, data: Path, i: int, work: Path) -> ChangeRound:
    """Change one file, time stop + start, publish and apply it, back it up with restic."""
    changed = change_one_file(data, i)
    rig.stop_loops()  # stop + start timed right before the round it is compared to
    provider_ss, consumer_ss = rig.stop_start_seconds()
    rig.run_loops()
    before = rig.blob_sizes()
    result = rig.round(f"change-{i + 1}")
    added = {cid: size for cid, size in rig.blob_sizes().items() if cid not in before}
    restic_before = restic.repo_bytes()
    restic_s = restic.backup(data)
    durations = rig.sent_entry(result.cid)["durations"]
    consumer_copy = rig.consumer_data / changed.relative_to(rig.provider_data)
    return ChangeRound(
        changed_bytes=changed.stat().st_size,
        result=result,
        provider_stop_start=provider_ss,
        consumer_stop_start=consumer_ss,
        added_bytes=sum(added.values()),
        added_index_bytes=added.get(result.cid, 0),
        added_blobs=len(added),
        publish_s=float(durations["archive"]) + float(durations["upload"]),
        transfer_s=put_get_seconds(rig.data.shared_blobs, list(added), work),
        applied=same_bytes(changed, consumer_copy),
        restic_growth_bytes=restic.repo_bytes() - restic_before,
        restic_s=restic_s,
    )


def change_one_file(data: Path, i: int) -> Path:
    """Overwrite one random-content file in place with new random bytes; return it.

    ``generate`` writes random content to odd-numbered files; round ``i`` takes the
    ``i``-th one after the middle, so every round changes a file no round changed.
    """
    candidates = sorted(p for p in data.rglob("f*.bin") if int(p.stem[1:]) % 2)
    path = candidates[(len(candidates) // 2 + i) % len(candidates)]
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
