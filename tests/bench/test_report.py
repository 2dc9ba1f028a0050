"""The bench table's rules: ratios, targets by size, PASS / MISS / info."""

from __future__ import annotations

from pathlib import Path

from container_apps.bench.baselines import CHUNKED, TAR_ZSTD
from container_apps.bench.full import FirstSnapshot, SizeFigures
from container_apps.bench.noise import LoadSampler
from container_apps.bench.report import ratio_row, size_rows


def figures(mib: int, net: float) -> SizeFigures:
    snap = FirstSnapshot(1.0 + net, 1.0 + net, 1.0, 1.0, 100)
    return SizeFigures(
        mib,
        data_bytes=mib * 1024 * 1024,
        files=10,
        snapshots={"chunked": [snap], "tar.zst": [snap]},
        cp_s=[1.0],
        untar_s=[1.0],
        capture_s={CHUNKED: [1.0], TAR_ZSTD: [2.0]},
    )


def test_ratio_row_divides_by_the_baseline_and_marks_miss_above_the_limit() -> None:
    row = ratio_row("x", 3.0, 2.0, "s", 1.5)
    assert (row.ratio, row.passed) == (1.5, True)
    assert ratio_row("x", 3.1, 2.0, "s", 1.5).cells()[-1] == "MISS"
    assert ratio_row("x", 1.0, 2.0, "MiB/s", 1.0, at_least=True).passed is False
    assert ratio_row("x", 1.0, 2.0, "s").cells()[-2:] == ["-", "info"]


def test_full_snapshot_downtime_targets_start_at_400_mib() -> None:
    def downtime_results(mib: int) -> list[str]:
        return [r.cells()[-1] for r in size_rows(figures(mib, 2.0)) if "/ cp -a" in r.name]

    assert downtime_results(100) == ["info"] * 4
    assert downtime_results(400) == ["MISS", "MISS", "info", "info"]
    rows = size_rows(figures(400, 1.0))
    assert [r.passed for r in rows if "chunked / cp -a" in r.name] == [True, True]
    assert rows[0].passed is True  # capture twice as fast as tar | zstd


def test_load_sampler_reports_min_median_max_of_the_samples(tmp_path: Path) -> None:
    loadavg = tmp_path / "loadavg"
    loadavg.write_text("3.50 1.00 1.00 2/100 42\n")
    sampler = LoadSampler(interval=0.01, path=loadavg).start()
    sampler.stop()
    assert sampler.samples and set(sampler.samples) == {3.5}  # the first field, read at once
    sampler.samples[:] = [3.5, 1.0, 2.0]
    assert "min/median/max 1.00/2.00/3.50 over 3 samples" in sampler.summary()
