"""`car sync status|history|retry` over a data directory written by the real writers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from container_apps.cli import app
from container_apps.layout import DataDir
from container_apps.registries.factory import open_registry
from container_apps.sync import constants as C
from container_apps.sync.apply_state import ApplyState
from container_apps.sync.config import SyncConfig
from container_apps.sync.history import HistoryLog
from container_apps.sync.manager import SyncSite, write_runner_state
from container_apps.sync.quarantine import Quarantine
from typer.testing import CliRunner

CID_A = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


@pytest.fixture
def data(tmp_path: Path) -> DataDir:
    data = DataDir(tmp_path / "data")
    prov = data.instance("prov")
    prov.ensure()
    site = SyncSite(paths=prov, bindings=[], node_id="node-a")
    cfg = SyncConfig.parse({"ENABLED": True, "KEY": "k", "TYPE": "provider"})
    # A real registry object (it connects lazily), so describe() is what redacts.
    registry = open_registry("redis://:s3cret@127.0.0.1:1/0")
    write_runner_state(cfg, site, None, registry, None)
    HistoryLog(prov.history_sent).append(
        {
            "cid": CID_A,
            "version": 100,
            "published_timestamp": 100.5,
            "downtime_seconds": 0.3,
            "manifest": {"archive_size_bytes": 42},
        }
    )
    cons = data.instance("cons")
    cons.ensure()
    HistoryLog(cons.history_received).append(
        {"cid": CID_A, "version": 100, "applied_timestamp": 101.0, "downtime_seconds": 0.4}
    )
    state = ApplyState(cons.sync_state)
    state.set_state(C.APPLY_STATE_APPLIED, cid=CID_A, version=100, now=101.0)
    state.halt("rollback could not restore /app/data/x", now=102.0, cid="bafkreibad")
    Quarantine(cons.sync_state / C.QUARANTINE_FILE).record_failure(
        "bafkreibad", "d" * 64, kind="commit", error="disk full", now=102.0
    )
    return data


def _run(data: DataDir, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*args, "--data-dir", str(data.root)])
    return result.exit_code, result.output


def test_status_json_has_the_spec_fields_for_every_instance(data: DataDir) -> None:
    code, out = _run(data, "sync", "status", "--json")
    assert code == 0
    by_id = {s["instance_id"]: s for s in json.loads(out)}
    assert set(by_id) == {"prov", "cons"}
    prov, cons = by_id["prov"], by_id["cons"]
    assert prov["role"] == "provider" and prov["key"] == "k"
    assert prov["last_published"] == {"cid": CID_A, "version": 100, "timestamp": 100.5}
    assert cons["last_applied"] == {"cid": CID_A, "version": 100, "timestamp": 101.0}
    assert cons["apply_state"] == "applied"
    assert cons["halt"] == "rollback could not restore /app/data/x"
    assert [q["cid"] for q in cons["quarantine"]] == ["bafkreibad"]
    assert prov["halt"] is None and prov["quarantine"] == []


def test_status_never_shows_backend_secrets(data: DataDir) -> None:
    _, out = _run(data, "sync", "status", "prov")
    assert "redis://:***@127.0.0.1:1/0" in out
    assert "s3cret" not in out
    _, out = _run(data, "sync", "status", "--json")
    assert "s3cret" not in out


def test_status_text_names_the_halt_and_the_fix(data: DataDir) -> None:
    code, out = _run(data, "sync", "status", "cons")
    assert code == 0
    assert "HALTED" in out and "car sync retry" in out


def test_unknown_instance_exits_2_naming_known_ones(data: DataDir) -> None:
    code, out = _run(data, "sync", "status", "nosuch")
    assert code == 2
    assert "nosuch" in out and "cons, prov" in out


def test_history_json_tags_direction_and_instance(data: DataDir) -> None:
    code, out = _run(data, "sync", "history", "--json")
    rows = json.loads(out)
    assert code == 0
    assert [(r["instance_id"], r["direction"]) for r in rows] == [
        ("prov", "sent"),
        ("cons", "received"),
    ]
    assert all("_written_ns" not in r for r in rows)
    code, out = _run(data, "sync", "history", "--received", "--json")
    assert [r["direction"] for r in json.loads(out)] == ["received"]


def test_history_table_lists_each_entry(data: DataDir) -> None:
    code, out = _run(data, "sync", "history", "prov", "--sent")
    assert code == 0
    assert "sent" in out and "0.30s" in out


def test_retry_clears_halt_and_quarantine(data: DataDir) -> None:
    code, out = _run(data, "sync", "retry", "cons")
    assert code == 0
    assert "cleared halt" in out and "1 quarantine" in out
    paths = data.instance("cons")
    assert not ApplyState(paths.sync_state).is_halted()
    assert Quarantine(paths.sync_state / C.QUARANTINE_FILE).entries() == []
    code, out = _run(data, "sync", "retry", "cons")
    assert "was not halted" in out


def test_retry_of_unknown_instance_exits_2(data: DataDir) -> None:
    code, _ = _run(data, "sync", "retry", "nosuch")
    assert code == 2


def test_status_of_an_empty_data_dir_names_it_and_how_to_pick_another(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["sync", "status", "--data-dir", str(tmp_path / "none")])
    assert result.exit_code == 0
    assert f"no instances in {tmp_path / 'none'}" in " ".join(result.output.split())
    assert "--data-dir or set CAR_DATA_DIR" in " ".join(result.output.split())


def test_unknown_instance_in_an_empty_data_dir_says_it_has_none(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["sync", "status", "x", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1
    assert "it has no instances; point --data-dir" in result.output


def test_piped_status_keeps_each_line_whole(data: DataDir) -> None:
    # CliRunner output is not a terminal, where rich would wrap at 80 columns.
    code, out = _run(data, "sync", "status", "prov")
    assert code == 0
    [published] = [ln for ln in out.splitlines() if "published" in ln]
    assert CID_A in published and "v100 at " in published
    [backends] = [ln for ln in out.splitlines() if "backends" in ln]
    assert "blobs=" in backends and "registry=" in backends


def test_piped_history_is_a_header_and_tab_separated_whole_cells(data: DataDir) -> None:
    # CliRunner output is not a terminal: no box drawing, nothing cut.
    code, out = _run(data, "sync", "history")
    assert code == 0
    header, *lines = out.splitlines()
    assert header.split("\t") == [
        "when",
        "instance",
        "dir",
        "version",
        "size",
        "downtime",
        "retired",
        "cid",
    ]
    rows = [ln.split("\t") for ln in lines]
    assert rows[0] == [
        "1970-01-01T00:01:40Z",
        "prov",
        "sent",
        "100",
        "42 B",
        "0.30s",
        "-",
        CID_A,
    ]
    assert rows[1][:3] == ["1970-01-01T00:01:41Z", "cons", "received"]
    assert not any(ch in out for ch in "│┃━─…")


def test_empty_history_is_one_line_naming_the_instance(data: DataDir) -> None:
    code, out = _run(data, "sync", "history", "prov", "--received")
    assert code == 0
    assert out.strip() == f"no history entries for instance prov in {data.root}"


def test_history_table_shows_a_damaged_deletion_as_unknown(data: DataDir) -> None:
    HistoryLog(data.instance("prov").history_sent).append(
        {"cid": "bafkreidamaged", "version": 101, "deletion": {"deletion_succeeded": "yes"}}
    )
    code, out = _run(data, "sync", "history", "prov", "--sent")
    assert code == 0, out
    [row] = [ln.split("\t") for ln in out.splitlines() if "bafkreidamaged" in ln]
    assert row[6] == "-"


def test_status_times_are_utc_iso_8601(data: DataDir) -> None:
    code, out = _run(data, "sync", "status", "prov")
    assert code == 0
    assert f"{CID_A} v100 at 1970-01-01T00:01:40Z" in out
