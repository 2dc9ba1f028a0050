"""Archive build throughput vs ``tar | zstd -T0 -3`` and ``cp -a`` (README, "Benchmarks").

Generates a data set (default 256 MiB in 1000 files, half random and half compressible
text, so compression does real work), then times on the same data, in one run:

- ``build_archive`` (tar.zst, level 3, multi-threaded), the provider's capture step;
- ``tar -cf - DIR | zstd -T0 -3 > out``, the target (throughput ratio >= 1.0);
- ``cp -a DIR copy``, the yardstick of the downtime targets.

Each is run ``--repeat`` times (rounds interleave the methods) after one warm-up pass
(page cache hot for all), and the best time is reported. Needs the ``zstd`` command
line tool: ``apt-get install -y zstd`` (Debian package ``zstd``) if it is missing.

    python bench/bench_archive.py --mib 256 --files 1000 --repeat 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from container_apps.bench.common import cp_a, generate, interleaved, tar_zstd, zstd_missing
from container_apps.sync.archive import build_archive
from container_apps.sync.paths import PathResolver
from container_apps.volumes.binding import VolumeBinding


def best_times(
    repeat: int, methods: dict[str, Callable[[], None]], before_each: Callable[[], None]
) -> dict[str, float]:
    """Best wall time of each method; rounds interleave the methods so that background
    load on the machine hits all of them alike (``common.interleaved``)."""
    times = interleaved(repeat, methods, before_each=before_each)
    return {name: min(values) for name, values in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="data size in MiB")
    parser.add_argument("--files", type=int, default=1000, help="number of files")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per method")
    parser.add_argument("--dir", type=Path, default=None, help="work dir (default: a temp dir)")
    args = parser.parse_args()
    problem = zstd_missing()
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-archive-", dir=args.dir))
    try:
        return run(work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path, args: argparse.Namespace) -> int:
    data = work / "data"
    size = generate(data, args.mib, args.files)
    resolver = PathResolver([VolumeBinding("data", "fixed", data, "/app/data")])
    sources = [resolver.resolve_for_read("/app/data")]
    ours_out, tar_out, copy = work / "ours.tar.zst", work / "tar.tar.zst", work / "copy"

    def ours() -> None:
        build_archive(sources, ours_out, fmt="tar.zst", level=3)

    def fresh_outputs() -> None:
        # Every run writes new files: replacing the last run's output (and waiting for its
        # write-back) would be billed to whichever method runs next.
        ours_out.unlink(missing_ok=True)
        tar_out.unlink(missing_ok=True)
        shutil.rmtree(copy, ignore_errors=True)
        os.sync()

    results = best_times(
        args.repeat,
        {
            "build_archive (tar.zst -3)": ours,
            "tar | zstd -T0 -3": lambda: tar_zstd(data, tar_out),
            "cp -a": lambda: cp_a(data, copy) and None,
        },
        fresh_outputs,
    )
    reference = results["tar | zstd -T0 -3"]
    cp_time = results["cp -a"]
    mib = size / 1024 / 1024
    print(
        f"data: {mib:.0f} MiB in {args.files} files, {os.cpu_count()} CPUs, best of {args.repeat}"
    )
    print(f"{'method':<28}{'seconds':>9}{'MiB/s':>9}{'thrpt vs tar|zstd':>19}{'time vs cp -a':>15}")
    for name, seconds in results.items():
        print(
            f"{name:<28}{seconds:>9.3f}{mib / seconds:>9.0f}"
            f"{reference / seconds:>19.2f}{seconds / cp_time:>15.2f}"
        )
    print(f"archive sizes: ours {ours_out.stat().st_size} B, tar|zstd {tar_out.stat().st_size} B")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
