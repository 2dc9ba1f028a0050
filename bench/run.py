"""The performance targets in one run, every figure a ratio against a baseline of that run.

    python bench/run.py                # full sizes: 100 MiB, 400 MiB, 1.6 GiB; 1 GiB change
    python bench/run.py --quick        # 100 MiB only, a 128 MiB change row, 100 MiB RSS

Needs root (loop volumes), a Docker engine, ``zstd`` and ``restic``
(``apt-get install -y zstd restic``). Parts (``--parts``, all by default):

- ``sizes``: for each ``--sizes`` MiB (files of ``--file-kib`` KiB, half random, half
  text) a full first snapshot by fresh runners in ``chunked`` and in ``tar.zst``:
  provider and consumer downtime less the app's Docker stop + start (timed on the same
  runners), against ``cp -a`` loop volume -> loop volume and ``zstd -dc | tar -x`` into a
  loop volume; chunked capture throughput against ``tar | zstd -T0 -3`` (``full.py``);
- ``change``: ``--change-mib`` MiB in ``--change-files`` files, one file changed, on a
  consumer volume 1.6 x the data: store growth against the first snapshot and restic's,
  downtimes against stop + start + 0.2 s (``change.py``);
- ``rss``: peak RSS of a chunked publish and apply of ``--rss-mib`` MiB, each in a fresh
  child process (``rss.py``).

/proc/loadavg is sampled throughout and printed with the table. Everything runs in one
temporary work dir; every container, mount and loop device made under it is removed at
the end, also after a failure or SIGINT/SIGTERM. Exit status: 0 when every target is
PASS, 1 when one is MISS (the table is printed either way), 2 when it cannot run
(not root, a tool missing) or a measurement failed.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from container_apps.bench import report, rss
from container_apps.bench.change import ChangeFigures, measure_change
from container_apps.bench.common import MiB, median, zstd_missing
from container_apps.bench.full import FORMATS, SizeFigures, measure_size
from container_apps.bench.loops import sweep
from container_apps.bench.noise import LoadSampler
from container_apps.bench.restic_peer import restic_missing
from container_apps.runner.docker_runtime import DockerRuntime

PARTS = ("sizes", "change", "rss")
RSS_FORMAT = "chunked"


def say(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--sizes", default="100,400,1638", help="full-snapshot data sizes in MiB, comma-separated")
    add("--file-kib", type=int, default=200, help="file size of the sizes and RSS data")
    add("--repeat", type=int, default=3, help="full-snapshot rounds per size (fresh runners)")
    add("--baseline-repeat", type=int, default=3, help="cp -a and untar runs per round")
    add("--throughput-repeat", type=int, default=3, help="capture throughput rounds per size")
    add("--change-mib", type=int, default=1024, help="data size of the change row")
    add("--change-files", type=int, default=1024, help="files in it (one of them changes)")
    add("--change-rounds", type=int, default=3, help="change rounds (a new file each)")
    add("--rss-mib", type=int, default=1638, help="data size of the RSS rows")
    add("--poll", type=float, default=1.0, help="SYNC.POLL_INTERVAL (s, >= 1)")
    add("--parts", default=",".join(PARTS), help=f"which parts to run, of {','.join(PARTS)}")
    add("--quick", action="store_true", help="--sizes 100 --change-mib 128 --rss-mib 100")
    add("--dir", type=Path, default=None, help="work dir parent (default /tmp)")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.change_mib, args.change_files, args.rss_mib = "100", 128, 128, 100
    args.size_list = [int(s) for s in args.sizes.split(",") if s.strip()]
    args.part_set = {p.strip() for p in args.parts.split(",") if p.strip()}
    unknown = args.part_set - set(PARTS)
    if unknown:
        parser.error(f"unknown --parts {sorted(unknown)}; choose from {','.join(PARTS)}")
    return args


def files_for(mib: int, file_kib: int) -> int:
    return max(1, mib * 1024 // file_kib)


def cannot_run(args: argparse.Namespace) -> str | None:
    if os.geteuid() != 0:
        return "needs root (loop volumes)"
    if "change" in args.part_set and restic_missing():
        return restic_missing()
    return zstd_missing()


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through every finally: nothing is left behind


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = cannot_run(args)
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("bench")
    work = Path(tempfile.mkdtemp(prefix="car-bench-", dir=args.dir))
    sampler = LoadSampler().start()
    started = time.monotonic()
    rows: list[report.Row] = []
    details: list[str] = []
    try:
        measure(work, args, log, rows, details)
    except Exception as exc:
        log.exception("bench failed")
        print(f"bench failed: {exc}", file=sys.stderr)
        return 2
    finally:
        sampler.stop()
        clean_up(work)
    print("\n".join(details))
    print(sampler.summary())
    print(report.table(rows))
    print(f"total {time.monotonic() - started:.0f} s")
    return 0 if all(row.passed is not False for row in rows) else 1


def measure(
    work: Path,
    args: argparse.Namespace,
    log: logging.Logger,
    rows: list[report.Row],
    details: list[str],
) -> None:
    """Run the selected parts; append their rows and detail lines."""
    if "sizes" in args.part_set:
        for mib in args.size_list:
            files = files_for(mib, args.file_kib)
            figures = measure_size(
                work,
                mib,
                files,
                repeat=args.repeat,
                baseline_repeat=args.baseline_repeat,
                throughput_repeat=args.throughput_repeat,
                poll=args.poll,
                log=log,
                say=say,
            )
            rows.extend(report.size_rows(figures))
            details.append(size_details(figures))
    if "change" in args.part_set:
        change = measure_change(
            work,
            args.change_mib,
            args.change_files,
            rounds=args.change_rounds,
            poll=args.poll,
            log=log,
            say=say,
        )
        rows.extend(report.change_rows(change, args.poll))
        details.append(change_details(change))
    if "rss" in args.part_set:
        files = files_for(args.rss_mib, args.file_kib)
        say(f"RSS: {RSS_FORMAT} publish and apply of {args.rss_mib} MiB, each in a fresh child")
        size, results = rss.measure(work / "rss", args.rss_mib, files, RSS_FORMAT)
        shutil.rmtree(work / "rss", ignore_errors=True)
        rows.extend(report.rss_rows(results, size, RSS_FORMAT))
        details.append(
            f"RSS children: {size / MiB:.0f} MiB in {files} files; "
            + "; ".join(f"{r.step} {r.seconds:.1f} s" for r in results)
        )


def clean_up(work: Path) -> None:
    """The backstop after every part cleaned up after itself: sweep, then remove."""
    runtime = DockerRuntime()
    try:
        leftovers = sweep(work, runtime)
    finally:
        runtime.close()
    if leftovers:
        say("cleaned up leftovers: " + ", ".join(leftovers))
    shutil.rmtree(work, ignore_errors=True)


def _s(values: list[float]) -> str:
    return "/".join(f"{v:.2f}" for v in values) + " s"


def size_details(f: SizeFigures) -> str:
    parts = [f"{report.size_label(f.mib)}: {f.data_bytes / MiB:.0f} MiB in {f.files} files"]
    for fmt in FORMATS:
        snaps = f.snapshots[fmt]
        parts.append(
            f"{fmt}: downtime provider {_s([s.provider_downtime for s in snaps])}, "
            f"consumer {_s([s.consumer_downtime for s in snaps])}; stop+start provider "
            f"{_s([s.provider_stop_start for s in snaps])}, consumer "
            f"{_s([s.consumer_stop_start for s in snaps])}; stored "
            f"{report.human_bytes(median([s.stored_bytes for s in snaps]))}"
        )
    capture = ", ".join(f"{name} {_s(values)}" for name, values in f.capture_s.items())
    parts.append(f"cp -a {_s(f.cp_s)}; zstd -dc|tar -x {_s(f.untar_s)}; {capture}")
    return "\n  ".join(parts)


def change_details(f: ChangeFigures) -> str:
    assert f.first is not None
    size = report.human_bytes
    lines = [
        f"change: {f.data_bytes / MiB:.0f} MiB in {f.files} files; consumer volume "
        f"{f.consumer_volume_mib} MiB; first snapshot stored {size(f.first_store_bytes)}, "
        f"downtime provider {f.first.provider_downtime:.2f} s, consumer "
        f"{f.first.consumer_downtime:.2f} s; {f.restic_version}: first backup "
        f"{size(f.restic_first_bytes)} in {f.restic_first_s:.2f} s",
    ]
    for i, r in enumerate(f.rounds, 1):
        lines.append(
            f"round {i}: {size(r.changed_bytes)} changed; added {size(r.added_bytes)} in "
            f"{r.added_blobs} blobs (index {size(r.added_index_bytes)}), restic "
            f"{size(r.restic_growth_bytes)}; downtime provider "
            f"{r.result.provider_downtime:.2f} s, consumer {r.result.consumer_downtime:.2f} s; "
            f"stop+start provider {r.provider_stop_start:.2f} s, consumer "
            f"{r.consumer_stop_start:.2f} s; capture+upload {r.publish_s:.2f} s, restic "
            f"{r.restic_s:.2f} s; end-to-end {r.result.end_to_end:.2f} s, put+get "
            f"{r.transfer_s:.2f} s"
        )
    return "\n  ".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
