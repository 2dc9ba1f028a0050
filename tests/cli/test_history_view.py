"""`car sync history` layouts (README, "Logs and output"): fitted on a terminal, TSV piped."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from container_apps.cli.formats import human_size, iso_utc
from container_apps.cli.history_view import render_table, render_tsv, shorten_middle
from container_apps.layout import DataDir
from container_apps.sync.history import HistoryLog
from container_apps.sync.status import HistoryRow, history_entries
from container_apps.tests.support.pty_run import run_on_pty

CIDS = [
    "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
    "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
]
CAR = [sys.executable, "-c", "from container_apps.cli import main; main()"]


@pytest.fixture
def data(tmp_path: Path) -> DataDir:
    """Two demo-sized instances, as the demo leaves them: long names, 10-digit versions."""
    data = DataDir(tmp_path / "data")
    prov, cons = data.instance("demo-provider"), data.instance("demo-consumer")
    for paths in (prov, cons):
        paths.ensure()
    for i, cid in enumerate(CIDS):
        HistoryLog(prov.history_sent).append(
            {
                "cid": cid,
                "version": 1796140000 + i,
                "published_timestamp": 1796140000.0 + i,
                "downtime_seconds": 1.234,
                "manifest": {"archive_size_bytes": 1_258_291 * (i + 1)},
                "deletion": {"deletion_succeeded": i == 0},
            }
        )
        HistoryLog(cons.history_received).append(
            {
                "cid": cid,
                "version": 1796140000 + i,
                "applied_timestamp": 1796140005.0 + i,
                "downtime_seconds": 0.5,
            }
        )
    return data


def _rows(data: DataDir) -> list[HistoryRow]:
    return history_entries([data.instance(i) for i in data.instance_ids()])


def test_sizes_are_binary_units_with_one_decimal() -> None:
    assert [human_size(n) for n in (0, 42, 1023, 1024, 1_258_291, 5 * 1024**3)] == [
        "0 B", "42 B", "1023 B", "1.0 KiB", "1.2 MiB", "5.0 GiB",
    ]  # fmt: skip
    assert human_size(None) == human_size(-1) == human_size(True) == "-"


def test_times_are_utc_iso_8601_with_z() -> None:
    assert iso_utc(1796140000.7) == "2026-12-01T15:46:40Z"
    assert iso_utc(None) == iso_utc("soon") == iso_utc(1e300) == "-"


def test_a_shortened_cid_keeps_head_and_tail() -> None:
    short = shorten_middle(CIDS[0], 16)
    assert short == CIDS[0][:8] + "…" + CIDS[0][-7:]
    assert len(short) == 16
    assert shorten_middle("bafkreishort", 16) == "bafkreishort"


def test_the_table_fits_80_columns_and_tells_the_cids_apart(data: DataDir) -> None:
    lines = render_table(_rows(data), 80)
    assert all(len(line) <= 80 for line in lines), lines
    header = lines[0].split()
    assert header[:4] == ["when", "instance", "dir", "version"] and header[-1] == "cid"
    shown = {line.split()[-1] for line in lines[1:]}
    assert len(shown) == 2 and all("…" in cid for cid in shown)
    assert all(cid[-7:] in " ".join(lines) for cid in CIDS)
    assert "2026-12-01T15:46:40Z" in lines[1] and "demo-provider" in lines[1]


def test_a_wider_terminal_gets_the_dropped_columns_back_then_whole_cids(data: DataDir) -> None:
    assert "size" not in render_table(_rows(data), 80)[0]
    medium = render_table(_rows(data), 110)
    assert medium[0].split()[4:7] == ["size", "downtime", "retired"]
    assert "1.2 MiB" in medium[1] and "1.23s" in medium[1] and "yes" in medium[1]
    wide = render_table(_rows(data), 160)
    assert all(len(line) <= 160 for line in wide)
    assert CIDS[0] in wide[1]
    assert render_table(_rows(data), None) == wide


def test_tsv_has_every_column_whole(data: DataDir) -> None:
    lines = render_tsv(_rows(data))
    assert len(lines) == 5
    cells = lines[1].split("\t")
    assert cells == [
        "2026-12-01T15:46:40Z", "demo-provider", "sent", "1796140000", "1.2 MiB", "1.23s",
        "yes", CIDS[0],
    ]  # fmt: skip


def test_on_an_80_column_terminal_history_fits_and_wide_shows_whole_cids(
    data: DataDir,
) -> None:
    argv = [*CAR, "sync", "history", "--data-dir", str(data.root)]
    out = run_on_pty(argv, columns=80)
    lines = out.splitlines()
    assert len(lines) == 5 and all(len(line) <= 80 for line in lines), out
    assert "\t" not in out and CIDS[0] not in out and CIDS[0][-7:] in out
    wide = run_on_pty([*argv, "--wide"], columns=80)
    assert all(cid in wide for cid in CIDS)


def test_long_instance_ids_still_fit_80_columns(tmp_path: Path) -> None:
    data = DataDir(tmp_path / "data")
    for name in ("demo-provider-608a1df2", "a-very-long-instance-id-of-forty-chars-xx"):
        paths = data.instance(name)
        paths.ensure()
        HistoryLog(paths.history_received).append(
            {"cid": CIDS[0], "version": 1796141266, "applied_timestamp": 1796141271.0}
        )
    lines = render_table(_rows(data), 80)
    assert all(len(line) <= 80 for line in lines), lines
    assert lines[0].split() == ["when", "instance", "dir", "version", "cid"]
    assert all(" recv " in line and CIDS[0][-7:] in line for line in lines[1:])
    [long_row] = [line for line in lines if line.split()[1].startswith("a-very-")]
    assert "…" in long_row.split()[1] and long_row.split()[1].endswith("chars-xx")
    assert "a-very-long-instance-id-of-forty-chars-xx" in "\n".join(render_tsv(_rows(data)))
