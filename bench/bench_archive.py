"""Archive build throughput vs ``tar | zstd -T0 -3`` and ``cp -a`` (SPEC §12 target 2).

Generates a data set (default 256 MiB in 1000 files, half random and half compressible
text, so compression does real work), then times on the same data, in one run:

- ``build_archive`` (tar.zst, level 3, multi-threaded), the provider's capture step;
- ``tar -cf - DIR | zstd -T0 -3 > out``, the target (throughput ratio >= 1.0);
- ``cp -a DIR copy``, the yardstick SPEC §12 uses for downtime.

Each is run ``--repeat`` times (rounds interleave the methods) after one warm-up pass
(page cache hot for all), and the best time is reported. Needs the ``zstd`` command
line tool: ``apt-get install -y zstd`` (Debian package ``zstd``) if it is missing.

    python bench/bench_archive.py --mib 256 --files 1000 --repeat 5
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from container_apps.sync.archive import build_archive
from container_apps.sync.paths import PathResolver
from container_apps.volumes.binding import VolumeBinding

WORDS = b"alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron ".split()


def generate(root: Path, total_mib: int, files: int, seed: int = 7) -> int:
    """Write ``files`` files totalling ``total_mib`` MiB under ``root``; return bytes."""
    rng = random.Random(seed)
    per_file = total_mib * 1024 * 1024 // files
    written = 0
    for i in range(files):
        sub = root / f"d{i % 32:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        if i % 2:
            data = os.urandom(per_file)
        else:
            line = b" ".join(rng.choice(WORDS) for _ in range(12)) + b"\n"
            data = (line * (per_file // len(line) + 1))[:per_file]
        (sub / f"f{i:05d}.bin").write_bytes(data)
        written += per_file
    return written


def best_times(repeat: int, methods: dict[str, Callable[[], None]]) -> dict[str, float]:
    """Best wall time of each method; rounds interleave the methods so that background
    load on the machine hits all of them alike."""
    for fn in methods.values():
        fn()  # warm-up: same page-cache state for every method
    best = dict.fromkeys(methods, float("inf"))
    for _ in range(repeat):
        for name, fn in methods.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="data size in MiB")
    parser.add_argument("--files", type=int, default=1000, help="number of files")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per method")
    parser.add_argument("--dir", type=Path, default=None, help="work dir (default: a temp dir)")
    args = parser.parse_args()
    if shutil.which("zstd") is None:
        print("zstd not found: apt-get install -y zstd", file=sys.stderr)
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

    def tar_zstd() -> None:
        cmd = f"tar -C {data.parent} -cf - {data.name} | zstd -q -T0 -3 -f -o {tar_out}"
        subprocess.run(cmd, shell=True, check=True)

    def cp_a() -> None:
        shutil.rmtree(copy, ignore_errors=True)
        subprocess.run(["cp", "-a", str(data), str(copy)], check=True)

    results = best_times(
        args.repeat,
        {"build_archive (tar.zst -3)": ours, "tar | zstd -T0 -3": tar_zstd, "cp -a": cp_a},
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
