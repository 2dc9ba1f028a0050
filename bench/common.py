"""Helpers shared by the benchmarks: test data, baselines, interleaved timing, tables.

Every benchmark compares against a baseline measured in the same run on the same data
(``cp -a``, ``tar | zstd``), because these machines are noisy: absolute seconds move
from run to run, ratios much less. Methods are timed in interleaved rounds so that
background load hits all of them alike.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

MiB = 1024 * 1024
WORDS = b"alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron ".split()
ZSTD_INSTALL = "apt-get install -y zstd"


def generate(root: Path, total_mib: int, files: int, seed: int = 7) -> int:
    """Write ``files`` files totalling ``total_mib`` MiB under ``root``; return bytes.

    Half the files are random (incompressible), half repeated text (compressible), so
    compression does real work; 32 subdirectories, as an app's data dir would have.
    """
    rng = random.Random(seed)
    per_file = total_mib * MiB // files
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


def tree_bytes(root: Path) -> tuple[int, int]:
    """(regular-file bytes, regular files) under ``root``."""
    total = count = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            total += os.lstat(os.path.join(dirpath, name)).st_size
            count += 1
    return total, count


def zstd_missing() -> str | None:
    """The install hint when the ``zstd`` command line tool is missing, else None."""
    return None if shutil.which("zstd") else f"zstd not found: {ZSTD_INSTALL}"


def cp_a(src: Path, dest: Path) -> float:
    """Seconds of ``cp -a src dest`` (``dest`` removed first, untimed)."""
    shutil.rmtree(dest, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run(["cp", "-a", str(src), str(dest)], check=True)
    return time.perf_counter() - start


def tar_zstd(src: Path, out: Path) -> None:
    """``tar -cf - SRC | zstd -T0 -3 > out``: the archive-build baseline."""
    cmd = f"tar -C {src.parent} -cf - {src.name} | zstd -q -T0 -3 -f -o {out}"
    subprocess.run(cmd, shell=True, check=True)


def interleaved(
    repeat: int,
    methods: dict[str, Callable[[], None]],
    *,
    warm_up: bool = True,
    before_each: Callable[[], None] | None = None,
) -> dict[str, list[float]]:
    """Wall times of each method over ``repeat`` rounds that interleave the methods.

    One untimed warm-up pass first puts every method in the same page-cache state;
    ``before_each`` runs untimed before every timed call (e.g. removing the previous
    output and flushing its write-back, which would otherwise be billed to the next run).
    """
    if warm_up:
        for fn in methods.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeat):
        for name, fn in methods.items():
            if before_each is not None:
                before_each()
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def proc_status_mib(field: str, pid: int | str = "self") -> float:
    """A ``VmRSS``/``VmHWM`` line of /proc/PID/status, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain fixed-width table (readable in a log, diffable in a commit message)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    return "\n".join(lines)
