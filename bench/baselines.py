"""The floors every snapshot figure is divided by, measured on the same data in one run.

- ``cp_loop_to_loop``: ``cp -a`` of the data from its ext4 loop volume into another ext4
  loop volume, the runner's own kind of filesystem. A copy onto the host's root
  filesystem is several times slower here and would flatter every ratio;
- ``untar_into``: ``zstd -dc ARCHIVE | tar -x`` into a loop volume, what a consumer
  cannot beat when it writes every file of a full snapshot;
- ``capture_throughput``: seconds of a full chunked capture (chunk, hash, compress,
  write packs: ``ChunkedSnapshotWriter``, as the provider runs it) against
  ``tar -cf - | zstd -T0 -3`` writing its archive next to it, in interleaved rounds.

Before each timed call the previous output is removed and ``sync`` runs (untimed), so a
copy never pays for the write-back of the one before. Plain ``cp -a`` and ``tar -x`` do
not sync their own output (a consumer's commit does): that is the baseline as defined.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from container_apps.bench.common import interleaved, tar_zstd
from container_apps.sync.chunks.writer import ChunkedSnapshotWriter
from container_apps.sync.paths import PathResolver
from container_apps.volumes.binding import VolumeBinding

CHUNKED = "chunked capture"
TAR_ZSTD = "tar | zstd -T0 -3"


def _empty(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.unlink(missing_ok=True)
    os.sync()


def _empty_volume(volume: Path) -> None:
    """Remove everything in ``volume`` (room for one copy of the data only), then sync."""
    for child in volume.iterdir():
        if child.name != "lost+found":
            _empty(child)
    os.sync()


def _run(cmd: str) -> None:
    proc = subprocess.run(cmd, shell=True, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd!r} exited {proc.returncode}: {proc.stderr[-1500:]}")


def cp_loop_to_loop(src: Path, dest_volume: Path) -> float:
    """Seconds of ``cp -a SRC DEST_VOLUME/copy`` (the volume emptied first, untimed)."""
    _empty_volume(dest_volume)
    start = time.perf_counter()
    _run(f"cp -a {src} {dest_volume / 'copy'}")
    return time.perf_counter() - start


def untar_into(archive: Path, dest_volume: Path) -> float:
    """Seconds of ``zstd -dc ARCHIVE | tar -x -C DEST_VOLUME/untar`` (volume emptied first)."""
    _empty_volume(dest_volume)
    dest = dest_volume / "untar"
    dest.mkdir()
    start = time.perf_counter()
    _run(f"zstd -q -dc {archive} | tar -x -C {dest}")
    return time.perf_counter() - start


def capture_throughput(data: Path, work: Path, repeat: int) -> dict[str, list[float]]:
    """Seconds of a full chunked capture and of ``tar | zstd -T0 -3`` of ``data``.

    Both write their output under ``work`` (the host disk, where a provider stages its
    capture); neither has a previous snapshot. ``repeat`` interleaved rounds, no warm-up
    (the data was just written or copied, so the page cache is hot for both).
    """
    binding = VolumeBinding("data", "fixed", data, "/app/data")
    sources = [PathResolver([binding]).resolve_for_read("/app/data")]
    staging, archive = work / "chunk-staging", work / "throughput.tar.zst"

    def fresh() -> None:
        _empty(staging)
        _empty(archive)

    def chunked() -> None:
        ChunkedSnapshotWriter(staging).write(sources)

    methods = {CHUNKED: chunked, TAR_ZSTD: lambda: tar_zstd(data, archive)}
    try:
        return interleaved(repeat, methods, warm_up=False, before_each=fresh)
    finally:
        fresh()
