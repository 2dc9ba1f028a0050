"""Full first snapshots at one data size: chunked and tar.zst against their floors.

For one size the data (``common.generate``: half random, half text) is written once to a
scratch ext4 loop volume. Each of ``repeat`` rounds then measures, on that same data:

- for each format (``tar.zst`` first, then ``chunked``): a fresh ``SyncRig`` (new
  provider and consumer runners, empty volumes, an empty store); the data copied into
  the provider's volume (untimed); the apps' Docker stop + start timed through the
  runners' own control; then one snapshot round. Its provider and consumer downtime,
  less that stop + start, is what the format costs on top of the restart. The rig is
  closed and its data dir removed before the next one starts, so only one runner pair
  holds disk and page cache at a time;
- ``baseline_repeat`` times, alternating: ``cp -a`` of the data from its loop volume
  into a second loop volume, and ``zstd -dc | tar -x`` of the tar.zst snapshot this
  project just published into that second loop volume (the consumer-side floor). Both
  are cheap next to a rig, and at 1.6 GiB a single ``cp -a`` here varies 2-3x with the
  kernel's write-back of the loop device, so the median of several is the divisor;

and finally the capture throughput (``baselines.capture_throughput``) on the data.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from container_apps.bench.baselines import capture_throughput, cp_loop_to_loop, untar_into
from container_apps.bench.common import generate, tree_bytes
from container_apps.bench.loops import ScratchVolumes
from container_apps.bench.rig import RigSettings, SyncRig

FORMATS = ("tar.zst", "chunked")


@dataclass(frozen=True, slots=True)
class FirstSnapshot:
    """One full snapshot round of one format, in seconds and bytes."""

    provider_downtime: float
    consumer_downtime: float
    provider_stop_start: float
    consumer_stop_start: float
    stored_bytes: int  # what the publish added to the empty blob store

    @property
    def provider_net(self) -> float:
        """Provider downtime less the app's stop + start: what the capture itself cost."""
        return self.provider_downtime - self.provider_stop_start

    @property
    def consumer_net(self) -> float:
        """Consumer downtime less the app's stop + start: what the commit itself cost."""
        return self.consumer_downtime - self.consumer_stop_start


@dataclass(slots=True)
class SizeFigures:
    """Everything measured at one size (lists hold one value per round)."""

    mib: int
    data_bytes: int = 0
    files: int = 0
    snapshots: dict[str, list[FirstSnapshot]] = field(default_factory=dict)
    cp_s: list[float] = field(default_factory=list)
    untar_s: list[float] = field(default_factory=list)
    capture_s: dict[str, list[float]] = field(default_factory=dict)


def volume_mib(data_mib: int, factor: float) -> int:
    """A volume for ``data_mib`` MiB of data with room to spare (ext4 metadata, staging)."""
    return int(data_mib * factor) + 64


def measure_size(
    work: Path,
    mib: int,
    files: int,
    *,
    repeat: int,
    baseline_repeat: int,
    throughput_repeat: int,
    poll: float,
    log: logging.Logger,
    say: Callable[[str], None],
) -> SizeFigures:
    """The module docstring's rounds at ``mib`` MiB in ``files`` files."""
    figures = SizeFigures(mib, snapshots={fmt: [] for fmt in FORMATS})
    with ScratchVolumes(work / "scratch", log) as volumes:
        src = volumes.make("src", volume_mib(mib, 1.25)) / "data"
        dest = volumes.make("dest", volume_mib(mib, 1.25))
        say(f"{mib} MiB: writing {files} files to a loop volume")
        generate(src, mib, files)
        os.sync()  # no write-back of the fresh data during the timings
        figures.data_bytes, figures.files = tree_bytes(src)
        archive = work / "floor.tar.zst"
        for i in range(repeat):
            for fmt in FORMATS:
                say(f"{mib} MiB round {i + 1}/{repeat}: first {fmt} snapshot on fresh runners")
                keep = archive if fmt == "tar.zst" else None
                snapshot = first_snapshot(work / f"rig-{fmt}", src, fmt, mib, poll, log, keep)
                figures.snapshots[fmt].append(snapshot)
            say(f"{mib} MiB round {i + 1}/{repeat}: cp -a and zstd -dc | tar -x loop -> loop")
            for _ in range(baseline_repeat):
                figures.cp_s.append(cp_loop_to_loop(src, dest))
                figures.untar_s.append(untar_into(archive, dest))
        archive.unlink(missing_ok=True)
        say(f"{mib} MiB: chunked capture vs tar | zstd -T0 -3, {throughput_repeat} rounds")
        figures.capture_s = capture_throughput(src, work, throughput_repeat)
    return figures


def first_snapshot(
    root: Path,
    src: Path,
    fmt: str,
    mib: int,
    poll: float,
    log: logging.Logger,
    keep_archive: Path | None,
) -> FirstSnapshot:
    """One snapshot of ``src`` by fresh runners publishing ``fmt``.

    ``keep_archive``: move the published blob there (a tar.zst archive, for the floor).
    The consumer's volume holds the old and the new copy while a tar.zst commit runs.
    """
    settings = RigSettings(
        archive_format=fmt,
        provider_volume_mib=volume_mib(mib, 1.25),
        consumer_volume_mib=volume_mib(mib, 2.5),
        poll_interval=poll,
    )
    rig = SyncRig(root, settings, log=log)
    try:
        rig.start()
        subprocess.run(["cp", "-a", str(src), str(rig.provider_data / "data")], check=True)
        os.sync()
        provider_ss, consumer_ss = rig.stop_start_seconds()
        rig.run_loops()
        result = rig.round(f"first-{fmt}")
        stored = sum(rig.blob_sizes().values())
        if keep_archive is not None:
            shutil.move(rig.data.shared_blobs / result.cid, keep_archive)
    finally:
        rig.close()
    shutil.rmtree(root)  # only once the rig released its volumes (else run.py sweeps)
    return FirstSnapshot(
        result.provider_downtime, result.consumer_downtime, provider_ss, consumer_ss, stored
    )
