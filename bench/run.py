"""README "Benchmarks" targets as ratios against ``cp -a`` / ``tar | zstd``, in one run.

    python bench/run.py [--mib 405] [--files 2048] [--rounds 5] [--poll 1] [--rss-mib 1024]

Needs root (loop volumes), a Docker engine and the ``zstd`` CLI (``apt-get install -y
zstd``). What it does, on one temporary data dir that is removed at the end:

1. starts a provider and a consumer ``ContainerAppRunnerPlugin`` in-process (real Docker,
   FIXED_SIZE_VOLUMES ext4 loop volumes, embedded ``file://`` + ``sqlite://`` backends)
   and fills the provider's volume with ``--mib`` MiB in ``--files`` files (half random,
   half text; the default is 425 MB in 2,048 files);
2. archive build throughput: ``build_archive`` vs ``tar -cf - | zstd -T0 -3`` on that
   volume (interleaved, median); before each timed build both outputs are removed and
   ``sync`` runs (untimed), so each build writes a new file with no write-back pending,
   as a publish does (an overwritten 200 MiB output was otherwise billed to the next run);
3. ``--rounds`` snapshot rounds (after one warm-up round): the provider app writes
   ``request.json``; the provider publishes; the consumer applies; the consumer app
   reports when it sees the data. Before each round ``cp -a`` of the same data to the
   host's ext4 disk is timed (the baseline of both downtimes), then ``sync`` (untimed)
   so that its write-back does not land in the round; medians are compared;
4. transfer time: put + get of the last archive through a ``file://`` store (median of 3);
   end-to-end must stay within POLL_INTERVAL + 2 x that;
5. peak RSS of publishing and of applying ``--rss-mib`` MiB, each in a fresh child.

Prints the sizes used and one table; exits 1 if a target fails, 2 if it cannot run.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from container_apps.bench import rss
from container_apps.bench.common import (
    MiB,
    TargetRow,
    cp_a,
    generate,
    interleaved,
    median,
    ratio_row,
    render_table,
    tar_zstd,
    tree_bytes,
    zstd_missing,
)
from container_apps.bench.rig import RoundResult, SyncRig
from container_apps.stores.factory import open_store
from container_apps.sync.archive import build_archive
from container_apps.sync.paths import PathResolver
from container_apps.volumes.binding import VolumeBinding

RSS_LIMIT_MIB = 150.0
HEADERS = ("target (README)", "measured", "baseline", "ratio", "target", "result")


@dataclass(slots=True)
class Figures:
    """Everything measured, before it becomes table rows."""

    data_bytes: int = 0
    data_files: int = 0
    ours_s: float = 0.0
    tar_zstd_s: float = 0.0
    cp_s: list[float] | None = None
    rounds: list[RoundResult] | None = None
    transfer_s: float = 0.0
    rss_bytes: int = 0
    rss: list[rss.RssResult] | None = None


def say(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=405, help="snapshot data size in MiB")
    parser.add_argument("--files", type=int, default=2048, help="number of files in it")
    parser.add_argument("--rounds", type=int, default=5, help="timed snapshot rounds")
    parser.add_argument("--repeat", type=int, default=5, help="timed archive builds per method")
    parser.add_argument("--poll", type=float, default=1.0, help="SYNC.POLL_INTERVAL (s, >= 1)")
    parser.add_argument("--rss-mib", type=int, default=1024, help="data size of the RSS target")
    parser.add_argument("--rss-files", type=int, default=1024, help="files in the RSS data")
    parser.add_argument("--dir", type=Path, default=None, help="work dir parent (default /tmp)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    problem = zstd_missing() or (None if os.geteuid() == 0 else "needs root (loop volumes)")
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    work = Path(tempfile.mkdtemp(prefix="car-bench-", dir=args.dir))
    started = time.monotonic()
    try:
        figures = Figures()
        measure_runners(work, args, figures)
        say(f"RSS: publish and apply {args.rss_mib} MiB, each in a fresh child process")
        figures.rss_bytes, figures.rss = rss.measure(work / "rss", args.rss_mib, args.rss_files)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = target_rows(figures, args.poll)
    print_report(figures, args, rows, time.monotonic() - started)
    return 0 if all(row.passed for row in rows) else 1


def measure_runners(work: Path, args: argparse.Namespace, figures: Figures) -> None:
    """Steps 1-4 of the module docstring; the rig is always closed."""
    say(f"starting provider and consumer runners (data {args.mib} MiB in {args.files} files)")
    rig = SyncRig(
        work / "data", data_mib=args.mib, poll_interval=args.poll, log=logging.getLogger("bench")
    )
    try:
        rig.start()
        generate(rig.provider_data, args.mib, args.files)
        os.sync()  # no write-back of the fresh data during the timings
        figures.data_bytes, figures.data_files = tree_bytes(rig.provider_data)
        say("archive build throughput: build_archive vs tar | zstd -T0 -3")
        measure_archive(rig.provider_data, work, args.repeat, figures)
        rig.run_loops()
        say("warm-up round")
        rig.round("warm-up")
        figures.cp_s, figures.rounds = [], []
        for i in range(args.rounds):
            figures.cp_s.append(cp_a(rig.provider_data, work / "cp-copy"))
            os.sync()  # the copy's write-back must not land in the round's timings
            figures.rounds.append(rig.round(f"round-{i + 1}"))
            say(f"round {i + 1}/{args.rounds}: {figures.rounds[-1]}")
        shutil.rmtree(work / "cp-copy", ignore_errors=True)
        blob = rig.data.shared_blobs / figures.rounds[-1].cid
        figures.transfer_s = measure_transfer(blob, work / "transfer")
    finally:
        rig.close()


def measure_archive(data: Path, work: Path, repeat: int, figures: Figures) -> None:
    resolver = PathResolver([VolumeBinding("data", "fixed", data, "/app/data")])
    sources = [resolver.resolve_for_read("/app/data")]
    ours_out, tar_out = work / "ours.tar.zst", work / "tar.tar.zst"

    def fresh_outputs() -> None:
        # Each run writes a new file, as a publish does: replacing the last 200 MiB output
        # (and its pending write-back) would be billed to whichever method runs next.
        ours_out.unlink(missing_ok=True)
        tar_out.unlink(missing_ok=True)
        os.sync()

    times = interleaved(
        repeat,
        {
            "ours": lambda: build_archive(sources, ours_out, fmt="tar.zst", level=3),
            "tar": lambda: tar_zstd(data, tar_out),
        },
        before_each=fresh_outputs,
    )
    figures.ours_s, figures.tar_zstd_s = median(times["ours"]), median(times["tar"])
    ours_out.unlink(missing_ok=True)
    tar_out.unlink(missing_ok=True)


def measure_transfer(blob: Path, work: Path, repeat: int = 3) -> float:
    """Median seconds of put + get of ``blob`` through a fresh ``file://`` store."""
    times = []
    for i in range(repeat):
        store = open_store(f"file://{work / f'blobs-{i}'}", cache_dir=work / "cache")
        start = time.perf_counter()
        cid = store.put(blob)
        store.get(cid, sha256=None)
        times.append(time.perf_counter() - start)
    shutil.rmtree(work, ignore_errors=True)
    return median(times)


def target_rows(f: Figures, poll: float) -> list[TargetRow]:
    assert f.rounds and f.cp_s and f.rss
    cp = median(f.cp_s)
    mib = f.data_bytes / MiB
    transfer_bound = poll + 2 * f.transfer_s
    rows = [
        ratio_row(
            "provider downtime / cp -a",
            median([r.provider_downtime for r in f.rounds]),
            cp,
            "s",
            1.5,
        ),
        ratio_row(
            "archive MiB/s / tar|zstd",
            mib / f.ours_s,
            mib / f.tar_zstd_s,
            "MiB/s",
            1.0,
            at_least=True,
        ),
        ratio_row(
            "consumer downtime / cp -a",
            median([r.consumer_downtime for r in f.rounds]),
            cp,
            "s",
            1.5,
        ),
    ]
    for result in f.rss:
        rows.append(
            TargetRow(
                f"peak RSS {result.step} {f.rss_bytes / MiB:.0f} MiB",
                result.peak_mib,
                result.before_mib,
                "MiB",
                f"<= {RSS_LIMIT_MIB:g} MiB",
                result.peak_mib <= RSS_LIMIT_MIB,
            )
        )
    rows.append(
        ratio_row(
            "end-to-end / (poll + 2 x put+get)",
            median([r.end_to_end for r in f.rounds]),
            transfer_bound,
            "s",
            1.0,
        )
    )
    return rows


def print_report(f: Figures, args: argparse.Namespace, rows: list[TargetRow], total: float) -> None:
    assert f.rounds and f.cp_s and f.rss
    print(
        f"data: {f.data_bytes / MiB:.0f} MiB in {f.data_files} files "
        f"(archive {f.rounds[-1].archive_bytes / MiB:.0f} MiB); {args.rounds} rounds after a "
        f"warm-up, medians; POLL_INTERVAL {args.poll:g} s; RSS data {f.rss_bytes / MiB:.0f} MiB "
        f"in {args.rss_files} files; {os.cpu_count()} CPUs"
    )
    per_round = {
        "cp -a": f.cp_s,
        "provider downtime": [r.provider_downtime for r in f.rounds],
        "consumer downtime": [r.consumer_downtime for r in f.rounds],
        "end-to-end": [r.end_to_end for r in f.rounds],
    }
    print(
        " | ".join(f"{name} {_list(values)} s" for name, values in per_round.items())
        + f" | put+get {f.transfer_s:.2f} s"
    )
    print(
        f"archive build: ours {f.ours_s:.2f} s, tar|zstd {f.tar_zstd_s:.2f} s; "
        + "; ".join(f"{r.step} {r.seconds:.1f} s" for r in f.rss)
        + " (RSS children); baseline of the RSS rows = RSS before the step"
    )
    print(render_table(HEADERS, [row.cells() for row in rows]))
    print(f"total {total:.0f} s")


def _list(values: list[float]) -> str:
    return "/".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    raise SystemExit(main())
