"""The bench table: every figure as a ratio against a baseline from the same run.

One ``Row`` per figure: what was measured, the baseline it is divided by, the ratio,
the target (README, "Benchmarks"; ``-`` for a figure shown for comparison only) and
PASS / MISS (``info`` without a target). Downtime targets for full snapshots hold from
``DOWNTIME_TARGET_MIB`` up (the targets name 400 MiB and 1.6 GiB); smaller sizes are
shown as information, since there the app's fixed stop + start cost dominates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from container_apps.bench.baselines import CHUNKED, TAR_ZSTD
from container_apps.bench.change import ChangeFigures
from container_apps.bench.common import MiB, median, render_table
from container_apps.bench.full import SizeFigures
from container_apps.bench.rss import RssResult

HEADERS = ("figure", "measured", "baseline", "ratio", "target", "result")
DOWNTIME_TARGET_MIB = 400
DOWNTIME_LIMIT = 1.5  # x cp -a loop -> loop, after the app's stop + start
CHANGE_STORE_LIMIT = 0.01  # of the first snapshot's bytes
CHANGE_SLACK_S = 0.2  # over the app's stop + start
RSS_LIMIT_MIB = 150.0


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table; ``passed`` is None for a figure without a target."""

    name: str
    measured: str
    baseline: str
    ratio: float | None
    target: str
    passed: bool | None

    def cells(self) -> list[str]:
        ratio = "-" if self.ratio is None else f"{self.ratio:.3g}"
        result = "info" if self.passed is None else "PASS" if self.passed else "MISS"
        return [self.name, self.measured, self.baseline, ratio, self.target, result]


def size_label(mib: float) -> str:
    return f"{mib / 1024:.1f} GiB" if mib >= 1024 else f"{mib:.0f} MiB"


def human_bytes(n: float) -> str:
    for unit, size in (("GiB", 1024 * MiB), ("MiB", MiB), ("KiB", 1024)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def _fmt(value: float, unit: str) -> str:
    if unit == "B":
        return human_bytes(value)
    return f"{value:.0f} {unit}" if unit == "MiB/s" else f"{value:.2f} {unit}"


def ratio_row(
    name: str,
    measured: float,
    baseline: float,
    unit: str,
    limit: float | None = None,
    *,
    at_least: bool = False,
) -> Row:
    """``measured / baseline`` against ``limit`` (``<=``, or ``>=`` with ``at_least``)."""
    ratio = measured / baseline if baseline > 0 else float("inf")
    if limit is None:
        target, passed = "-", None
    else:
        target = f"{'>=' if at_least else '<='} {limit:g}"
        passed = ratio >= limit if at_least else ratio <= limit
    return Row(name, _fmt(measured, unit), _fmt(baseline, unit), ratio, target, passed)


def size_rows(f: SizeFigures) -> list[Row]:
    """Capture throughput and full-snapshot downtimes at one size."""
    label, mib = size_label(f.mib), f.data_bytes / MiB
    cp, untar = median(f.cp_s), median(f.untar_s)
    limit = DOWNTIME_LIMIT if f.mib >= DOWNTIME_TARGET_MIB else None

    def net(fmt: str, side: str) -> float:
        return median([getattr(s, f"{side}_net") for s in f.snapshots[fmt]])

    rows = [
        ratio_row(
            f"{label} capture MiB/s: chunked / tar|zstd -T0 -3",
            mib / median(f.capture_s[CHUNKED]),
            mib / median(f.capture_s[TAR_ZSTD]),
            "MiB/s",
            1.0,
            at_least=True,
        )
    ]
    for side in ("provider", "consumer"):
        name = f"{label} {side} downtime-stop/start: chunked / cp -a"
        rows.append(ratio_row(name, net("chunked", side), cp, "s", limit))
    for side in ("provider", "consumer"):
        name = f"{label} {side} downtime-stop/start: tar.zst / cp -a"
        rows.append(ratio_row(name, net("tar.zst", side), cp, "s"))
    for fmt in ("chunked", "tar.zst"):
        name = f"{label} consumer downtime-stop/start: {fmt} / zstd -dc|tar -x"
        rows.append(ratio_row(name, net(fmt, "consumer"), untar, "s"))
    stored = {fmt: median([s.stored_bytes for s in f.snapshots[fmt]]) for fmt in f.snapshots}
    name = f"{label} bytes stored: chunked / tar.zst"
    rows.append(ratio_row(name, stored["chunked"], stored["tar.zst"], "B"))
    return rows


def change_rows(f: ChangeFigures, poll: float) -> list[Row]:
    """The one-file-change targets and the restic comparison (medians over the rounds)."""
    volume = size_label(f.consumer_volume_mib)
    held = size_label(f.data_bytes / MiB)
    applied = all(r.applied for r in f.rounds)
    added = f.med(lambda r: r.added_bytes)
    return [
        ratio_row(
            "change: bytes added to the store / first snapshot's",
            added,
            f.first_store_bytes,
            "B",
            CHANGE_STORE_LIMIT,
        ),
        ratio_row(
            "change: bytes added to the store / restic repo growth",
            added,
            f.med(lambda r: r.restic_growth_bytes),
            "B",
            1.0,
        ),
        ratio_row(
            f"change: provider downtime / (stop+start + {CHANGE_SLACK_S:g} s)",
            f.med(lambda r: r.result.provider_downtime),
            f.med(lambda r: r.provider_stop_start) + CHANGE_SLACK_S,
            "s",
            1.0,
        ),
        ratio_row(
            f"change: consumer downtime / (stop+start + {CHANGE_SLACK_S:g} s)",
            f.med(lambda r: r.result.consumer_downtime),
            f.med(lambda r: r.consumer_stop_start) + CHANGE_SLACK_S,
            "s",
            1.0,
        ),
        Row(
            f"change: a {volume} consumer volume holding {held} applies it",
            f"{sum(r.applied for r in f.rounds)}/{len(f.rounds)} applied",
            "-",
            None,
            "all applied",
            applied,
        ),
        ratio_row(
            "change: capture+upload / restic backup",
            f.med(lambda r: r.publish_s),
            f.med(lambda r: r.restic_s),
            "s",
        ),
        ratio_row(
            "change: end-to-end / (poll + 2 x put+get of the change)",
            f.med(lambda r: r.result.end_to_end),
            poll + 2 * f.med(lambda r: r.transfer_s),
            "s",
            1.0,
        ),
    ]


def rss_rows(results: Sequence[RssResult], data_bytes: int, fmt: str) -> list[Row]:
    """Peak RSS of each child against its RSS before the step; target is absolute."""
    rows = []
    for r in results:
        rows.append(
            Row(
                f"peak RSS: {r.step} {fmt} {size_label(data_bytes / MiB)} / RSS before",
                f"{r.peak_mib:.0f} MiB",
                f"{r.before_mib:.0f} MiB",
                r.peak_mib / r.before_mib,
                f"<= {RSS_LIMIT_MIB:g} MiB",
                r.peak_mib <= RSS_LIMIT_MIB,
            )
        )
    return rows


def table(rows: Sequence[Row]) -> str:
    return render_table(HEADERS, [row.cells() for row in rows])
