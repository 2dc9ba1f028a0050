"""`car sync status|history|retry` over a data directory written by the real writers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
from container_apps.tests.support.lock_holder import holding_lock
from container_apps.tests.support.servers import ServerProcess
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
    assert code == 5  # cons is halted (and no runner is alive)
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
    assert code == 5
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
    assert result.exit_code == 4  # nothing runs there: most likely the wrong data dir
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
    assert code == 4  # its runner is not alive
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
    code, out = _run(data, "sync", "status", "prov", "--offline")
    assert code == 4, out  # no runner holds its lock here: "not alive"
    assert f"{CID_A} v100 at 1970-01-01T00:01:40Z" in out


# --- health: exit codes, liveness, the registry's record ------------------------------


def _lock(data: DataDir, instance: str) -> Path:
    return data.instance(instance).root / "runner.lock"


def _record_dict() -> dict[str, Any]:
    """A valid registry record for CID_A, published at 2026-12-01T15:43:34Z by node-s."""
    manifest = {
        "schema_version": 1,
        "archive_paths": ["/app/data/"],
        "archive_format": "tar.zst",
        "archive_size_bytes": 42,
        "encryption": "r1fs-default",
    }
    return {
        "cid": CID_A,
        "version": 1_796_139_814,
        "timestamp": 1_796_139_814.5,
        "node_id": "node-s",
        "manifest": manifest,
    }


def _sqlite_provider(data: DataDir, instance: str, *, publish: bool) -> str:
    """A provider whose runner.json names a real SQLite registry; returns the record's CID."""
    paths = data.instance(instance)
    paths.ensure()
    registry = open_registry(f"sqlite://{data.shared_registry}")
    cfg = SyncConfig.parse({"ENABLED": True, "KEY": "sq", "TYPE": "provider"})
    write_runner_state(
        cfg, SyncSite(paths=paths, bindings=[], node_id="node-s"), None, registry, None
    )
    record = _record_dict()
    if publish:
        registry.hset(C.CHAINSTORE_HKEY, "sq", json.dumps(record))
        HistoryLog(paths.history_sent).append(
            {"cid": CID_A, "version": 1_796_139_814, "published_timestamp": 1_796_139_814.5}
        )
    return CID_A


def test_status_exits_0_for_a_live_runner_and_shows_the_registry_record(tmp_path: Path) -> None:
    data = DataDir(tmp_path / "data")
    _sqlite_provider(data, "sq", publish=True)
    with holding_lock(_lock(data, "sq")) as holder:
        code, out = _run(data, "sync", "status", "sq")
    assert code == 0, out
    lines = out.splitlines()
    assert "healthy" in lines[0]
    assert f"  runner     alive (PID {holder.pid})" in lines
    [reg] = [ln for ln in lines if ln.startswith("  registry ")]
    assert reg == (
        f"  registry   {CID_A} v1796139814 at 2026-12-01T15:43:34Z node=node-s  (= published)"
    )
    [published] = [ln for ln in lines if "published" in ln and "registry" not in ln]
    assert published.endswith("at 2026-12-01T15:43:34Z")


def test_status_json_carries_health_liveness_and_registry(tmp_path: Path) -> None:
    data = DataDir(tmp_path / "data")
    _sqlite_provider(data, "sq", publish=True)
    with holding_lock(_lock(data, "sq")) as holder:
        code, out = _run(data, "sync", "status", "--json")
    assert code == 0
    [st] = json.loads(out)
    assert st["healthy"] is True and st["problems"] == [] and st["warnings"] == []
    assert st["runner"] == {"alive": True, "pid": holder.pid, "detail": "runner.lock is held"}
    assert st["registry_now"] == {
        "url": f"sqlite://{data.shared_registry}",
        "record": {
            "cid": CID_A,
            "version": 1_796_139_814,
            "timestamp": 1_796_139_814.5,
            "time_utc": "2026-12-01T15:43:34Z",
            "node_id": "node-s",
        },
        "error": None,
        "invalid": None,
        "matches_local": True,
    }


def test_a_runner_killed_after_start_exits_4_and_is_not_taken_alive_by_its_pid(
    tmp_path: Path,
) -> None:
    data = DataDir(tmp_path / "data")
    _sqlite_provider(data, "sq", publish=True)
    with holding_lock(_lock(data, "sq")):
        pass  # killed on exit, PID left in runner.lock
    assert _lock(data, "sq").read_text().strip().isdigit()
    code, out = _run(data, "sync", "status", "--json")
    assert code == 4
    [st] = json.loads(out)
    assert st["runner"]["alive"] is False and st["runner"]["pid"] is None
    assert [p["kind"] for p in st["problems"]] == ["not_alive"]


def test_quarantine_with_a_live_runner_exits_3(tmp_path: Path) -> None:
    data = DataDir(tmp_path / "data")
    _sqlite_provider(data, "sq", publish=True)
    Quarantine(data.instance("sq").sync_state / C.QUARANTINE_FILE).record_failure(
        "bafkreibad", "d" * 64, kind="commit", error="disk full", now=102.0
    )
    with holding_lock(_lock(data, "sq")):
        code, out = _run(data, "sync", "status")
    assert code == 3
    assert "UNHEALTHY (quarantined)" in out and "quarantine bafkreibad commit x1: disk full" in out
    assert "retry at 1970-01-01T" in out  # UTC ISO, like every time shown


def test_halted_with_a_live_runner_exits_5_and_outranks_a_dead_one(data: DataDir) -> None:
    with holding_lock(_lock(data, "cons")):
        code, _ = _run(data, "sync", "status", "cons")
        assert code == 5
        code, _ = _run(data, "sync", "status")  # prov's runner is not alive: 4 < 5
        assert code == 5
    with holding_lock(_lock(data, "prov")):
        code, out = _run(data, "sync", "status", "prov")
    assert code == 0  # an unreadable registry is a warning only
    assert "warning    registry unreachable: redis://:***@127.0.0.1:1/0 (" in out


def test_no_registry_skips_the_registry_read(tmp_path: Path) -> None:
    data = DataDir(tmp_path / "data")
    _sqlite_provider(data, "sq", publish=True)
    code, out = _run(data, "sync", "status", "--json", "--no-registry")
    [st] = json.loads(out)
    assert st["registry_now"] is None and code == 4
    code, out = _run(data, "sync", "status", "--offline")
    assert "  registry " not in out


def test_status_never_creates_a_missing_sqlite_registry(tmp_path: Path) -> None:
    data = DataDir(tmp_path / "data")
    _sqlite_provider(data, "sq", publish=False)
    assert not data.shared_registry.exists()  # the registry connects lazily: never opened
    with holding_lock(_lock(data, "sq")):
        code, out = _run(data, "sync", "status", "sq")
    assert code == 0
    assert f"registry unreachable: sqlite://{data.shared_registry} (" in out
    assert "does not exist" in out and not data.shared_registry.exists()


def test_config_gives_the_registry_password_runner_json_leaves_out(
    tmp_path: Path, private_redis: ServerProcess
) -> None:
    import redis

    port = private_redis.ports["redis"]
    redis.Redis(host="127.0.0.1", port=port).config_set("requirepass", "s3cret")
    url = f"redis://:s3cret@127.0.0.1:{port}/0"
    data = DataDir(tmp_path / "data")
    paths = data.instance("pw")
    paths.ensure()
    registry = open_registry(url)
    cfg = SyncConfig.parse({"ENABLED": True, "KEY": "pwk", "TYPE": "consumer"})
    site = SyncSite(paths=paths, bindings=[], node_id="node-p")
    write_runner_state(cfg, site, None, registry, None)
    registry.hset(C.CHAINSTORE_HKEY, "pwk", json.dumps(_record_dict()))

    code, out = _run(data, "sync", "status", "--json")
    [st] = json.loads(out)
    assert st["registry_now"]["error"].endswith("pass the runner config with --config")
    assert code == 4  # no runner; the unread registry itself is only a warning

    config = tmp_path / "pw.json"
    runner_cfg = {
        "INSTANCE_ID": "pw",
        "IMAGE": "busybox",
        "SYNC": {"ENABLED": True, "KEY": "pwk", "TYPE": "consumer"},
        "STORAGE": {"REGISTRY": url},
    }
    config.write_text(json.dumps(runner_cfg))
    code, out = _run(data, "sync", "status", "--json", "--config", str(config))
    [st] = json.loads(out)
    assert st["registry_now"]["error"] is None and st["registry_now"]["record"]["cid"] == CID_A
    assert "s3cret" not in out

    config.write_text("{")
    code, out = _run(data, "sync", "status", "--config", str(config))
    assert code == 2 and f"cannot use config {config}" in out


def test_status_help_documents_every_exit_code() -> None:
    result = CliRunner().invoke(app, ["sync", "status", "--help"], terminal_width=200)
    text = " ".join(result.output.split())
    for meaning in (
        "0 every listed instance is healthy",
        "3 one is quarantined",
        "4 a runner is not alive",
        "5 one is halted",
        "the highest code wins",
        "2 for usage errors",
        "An unreachable registry is a warning only",
    ):
        assert meaning in text
