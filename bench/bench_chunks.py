"""Chunked snapshot capture throughput vs ``tar -cf - DIR | zstd -T0 -3 > /dev/null``.

README ("Benchmarks") asks chunking + hashing + compressing to keep up with ``tar | zstd -T0 -3`` on
the same data. This generates a data set (default 384 MiB in 384 files, half random and
half compressible text, ``common.generate``) on an ext4 loop volume (the runner's own
kind of filesystem; ``--no-loop`` or no root: a temp dir instead) and times, in
interleaved rounds after one warm-up pass (page cache hot for all), best of
``--repeat``:

- ``ChunkedSnapshotWriter.write`` of the whole tree, no previous snapshot (every chunk
  hashed, compressed and written to a pack), staging on tmpfs (closest to /dev/null) and
  on the host disk;
- the same with the previous snapshot and its facts: nothing changed, and one file
  changed (what an incremental capture costs while the app is stopped);
- ``tar -cf - DIR | zstd -T0 -3 > /dev/null``.

Besides wall time the table shows CPU seconds (user + system, all threads and child
processes), the figure a busy machine disturbs least: on 2 idle cores a method's wall
time cannot go below half its CPU time.

The loop volume, its loop device and every temp dir are removed at the end. Needs the
``zstd`` command line tool (``apt-get install -y zstd``).

    python bench/bench_chunks.py --mib 384 --files 384 --repeat 3
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from container_apps.bench.common import MiB, generate, interleaved, render_table, zstd_missing
from container_apps.sync.chunks.staged import PreviousSnapshot, StagedSnapshot
from container_apps.sync.chunks.writer import ChunkedSnapshotWriter
from container_apps.sync.paths import PathResolver, ResolvedPath
from container_apps.volumes.binding import VolumeBinding
from container_apps.volumes.loopback import LoopbackVolume


@contextlib.contextmanager
def data_dir(work: Path, mib: int, use_loop: bool) -> Iterator[tuple[Path, str]]:
    """A directory for the data: on a fresh ext4 loop volume if possible."""
    if not use_loop or os.geteuid() != 0 or shutil.which("losetup") is None:
        yield work / "data", "temp dir on the host filesystem"
        return
    volume = LoopbackVolume(
        "bench-chunks",
        image_path=work / "loop" / "image.img",
        mount_point=work / "loop" / "mnt",
        meta_path=work / "loop" / "meta.json",
        size_bytes=(mib * 3 // 2 + 64) * MiB,
        log=logging.getLogger("bench"),
    )
    try:
        volume.provision()
        yield volume.mount_point / "data", "ext4 loop volume"
    finally:
        volume.destroy()


def tar_zstd_to_null(src: Path) -> None:
    cmd = f"tar -C {src.parent} -cf - {src.name} | zstd -q -T0 -3 -c > /dev/null"
    subprocess.run(cmd, shell=True, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=384, help="data size in MiB")
    parser.add_argument("--files", type=int, default=384, help="number of files")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per method")
    parser.add_argument("--no-loop", action="store_true", help="data in a temp dir, not a loop")
    args = parser.parse_args()
    problem = zstd_missing()
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-chunks-"))
    shm = Path(tempfile.mkdtemp(prefix="bench-chunks-", dir="/dev/shm"))
    try:
        with data_dir(work, args.mib, not args.no_loop) as (data, where):
            size = generate(data, args.mib, args.files)
            return run(data, where, size, work, shm, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(shm, ignore_errors=True)


def run(data: Path, where: str, size: int, work: Path, shm: Path, args: argparse.Namespace) -> int:
    binding = VolumeBinding("data", "fixed", data, "/app/data")
    sources = [PathResolver([binding]).resolve_for_read("/app/data")]
    first = ChunkedSnapshotWriter(shm / "first").write(sources)
    previous = PreviousSnapshot(first.index_cid, first.index, first.facts)
    changed = sorted(data.rglob("*.bin"))[len(first.index.entries) // 3]
    methods = methods_for(sources, previous, work, shm, data)
    outputs: dict[str, StagedSnapshot] = {}
    cpu: dict[str, list[float]] = {name: [] for name in methods}

    def timed(name: str, fn: Callable[[], StagedSnapshot | None]) -> Callable[[], None]:
        def call() -> None:
            before = cpu_seconds()
            result = fn()
            cpu[name].append(cpu_seconds() - before)
            if result is not None:
                outputs[name] = result

        return call

    def before_each() -> None:
        for staging in (work / "staging", shm / "staging"):
            shutil.rmtree(staging, ignore_errors=True)
        changed.write_bytes(os.urandom(changed.stat().st_size))  # a fresh change each round
        os.sync()

    times = interleaved(
        args.repeat, {n: timed(n, f) for n, f in methods.items()}, before_each=before_each
    )
    best = {name: min(values) for name, values in times.items()}
    print_table(best, {n: min(v) for n, v in cpu.items()}, outputs, size, where, args, first)
    return 0


def cpu_seconds() -> float:
    """User + system CPU of this process (all threads) and of its waited-for children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def methods_for(
    sources: list[ResolvedPath], previous: PreviousSnapshot, work: Path, shm: Path, data: Path
) -> dict[str, Callable[[], StagedSnapshot | None]]:
    def writer(staging: Path, prev: PreviousSnapshot | None) -> Callable[[], StagedSnapshot]:
        return lambda: ChunkedSnapshotWriter(staging).write(sources, prev)

    return {
        "chunked, full, staging on tmpfs": writer(shm / "staging", None),
        "chunked, full, staging on disk": writer(work / "staging", None),
        "chunked, one file changed": writer(shm / "staging", previous),
        "tar -cf - | zstd -T0 -3 > /dev/null": lambda: tar_zstd_to_null(data),
    }


def print_table(
    best: dict[str, float],
    cpu: dict[str, float],
    outputs: dict[str, StagedSnapshot],
    size: int,
    where: str,
    args: argparse.Namespace,
    first: StagedSnapshot,
) -> None:
    mib = size / MiB
    reference = best["tar -cf - | zstd -T0 -3 > /dev/null"]
    rows = []
    for name, seconds in best.items():
        staged = outputs.get(name)
        read = f"{staged.stats.bytes_read / MiB:.1f}" if staged else f"{mib:.1f}"
        new = f"{staged.stats.stored_bytes_new / MiB:.1f}" if staged else "-"
        cells = [f"{seconds:.3f}", f"{mib / seconds:.0f}", f"{reference / seconds:.2f}"]
        rows.append([name, *cells, f"{cpu[name]:.2f}", read, new])
    print(
        f"data: {mib:.0f} MiB in {args.files} files (half random, half text) on {where}, "
        f"{os.cpu_count()} CPUs, best of {args.repeat}; full snapshot stores "
        f"{first.stats.stored_bytes_new / MiB:.1f} MiB in {len(first.pack_paths)} packs"
    )
    headers = ["method", "seconds", "MiB/s", "x tar|zstd", "CPU s", "MiB read", "MiB stored"]
    print(render_table(headers, rows))


if __name__ == "__main__":
    raise SystemExit(main())
