"""SqliteRegistry specifics: the table layout, several processes, lock and file errors.

The layout is docs/BACKENDS.md, "Storage layouts".
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from container_apps.errors import RegistryError, RegistryUnavailable
from container_apps.registries import sqlite as sqlite_module
from container_apps.registries.sqlite import SqliteRegistry

HKEY = "CHAINSTORE_SYNC"
LAYOUT_TABLE = (
    "CREATE TABLE registry (hkey TEXT, key TEXT, value TEXT NOT NULL, "
    "updated_at REAL, PRIMARY KEY (hkey, key))"
)


def test_table_layout_is_exactly_the_spec_table(tmp_path: Path) -> None:
    SqliteRegistry.from_url(f"sqlite://{tmp_path}/r.sqlite").hset(HKEY, "app", "{}")
    with sqlite3.connect(tmp_path / "r.sqlite") as conn:
        (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'registry'").fetchone()
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        row = conn.execute("SELECT hkey, key, value, updated_at FROM registry").fetchone()
    assert sql == LAYOUT_TABLE
    assert mode == "wal"
    assert row[:3] == (HKEY, "app", "{}")
    assert abs(row[3] - time.time()) < 60


def test_row_written_by_another_tool_is_read(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute(LAYOUT_TABLE)
        conn.execute("INSERT INTO registry VALUES (?, ?, ?, NULL)", (HKEY, "app", '{"cid": "b"}'))
    assert SqliteRegistry.from_url(f"sqlite://{path}").hget(HKEY, "app") == '{"cid": "b"}'


def test_row_whose_value_another_tool_stored_as_utf8_bytes_is_read_as_text(
    tmp_path: Path,
) -> None:
    # Python's sqlite3 stores a bytes value as a BLOB even in a TEXT column.
    path = tmp_path / "r.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute(LAYOUT_TABLE)
        value = '{"cid": "b", "node_id": "n\u00e9"}'.encode()
        conn.execute("INSERT INTO registry VALUES (?, ?, ?, NULL)", (HKEY, "app", value))
    conn.close()
    got = SqliteRegistry.from_url(f"sqlite://{path}").hget(HKEY, "app")
    assert got == '{"cid": "b", "node_id": "n\u00e9"}'


WRITER = textwrap.dedent(
    """
    import sys
    from container_apps.registries.sqlite import SqliteRegistry
    url, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    reg = SqliteRegistry.from_url(url)
    for i in range(count):
        assert reg.hset("H", f"{name}-{i}", f"{name}:{i}") is True
        assert reg.hset("H", "shared", f"{name}:{i}") is True
    """
)


def test_two_processes_writing_concurrently_lose_no_write(tmp_path: Path) -> None:
    url, count = f"sqlite://{tmp_path}/r.sqlite", 300
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, url, name, str(count)])
        for name in ("p1", "p2")
    ]
    try:
        codes = [p.wait(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert codes == [0, 0]
    reg = SqliteRegistry.from_url(url)
    for name in ("p1", "p2"):
        for i in range(count):
            assert reg.hget("H", f"{name}-{i}") == f"{name}:{i}"
    assert reg.hget("H", "shared") in {f"p1:{count - 1}", f"p2:{count - 1}"}


def test_database_locked_past_the_busy_timeout_is_transient(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "r.sqlite"
    reg = SqliteRegistry.from_url(f"sqlite://{path}")
    monkeypatch.setattr(sqlite_module, "BUSY_TIMEOUT_S", 0.1)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(RegistryUnavailable) as info:
            reg.hset(HKEY, "app", "v")
    finally:
        holder.close()
    assert "locked" in str(info.value)
    assert str(path) in str(info.value)
    assert reg.hset(HKEY, "app", "v") is True  # and it works once the lock is gone


def test_file_that_is_not_a_database_is_a_permanent_error(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    path.write_bytes(b"this is not sqlite " * 100)
    with pytest.raises(RegistryError) as info:
        SqliteRegistry.from_url(f"sqlite://{path}")
    assert not isinstance(info.value, RegistryUnavailable)
    assert str(path) in str(info.value)


def test_unwritable_parent_is_a_registry_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RegistryError) as info:
        SqliteRegistry.from_url(f"sqlite://{blocker}/sub/r.sqlite")
    assert "STORAGE.REGISTRY" in str(info.value)


def test_check_of_a_file_that_is_not_a_database_names_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    reg = SqliteRegistry.from_url(f"sqlite://{path}")
    path.unlink()
    path.write_bytes(b"this is not sqlite " * 100)
    with pytest.raises(RegistryError) as info:
        reg.check()
    assert "not a database" in str(info.value) and "move it aside" in str(info.value)


@contextlib.contextmanager
def _immutable(path: Path) -> Iterator[None]:
    """Read-only even for root (the runner runs as root): ``chattr +i``."""
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"chattr +i unsupported here: {done.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def test_read_only_file_fails_open_check_and_hset_with_the_fix_and_works_once_writable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "r.sqlite"
    opened = SqliteRegistry.from_url(f"sqlite://{path}")
    opened.hset(HKEY, "app", "v")
    with _immutable(path):
        # SQLite would open it read-only in silence and fail only the first hset.
        for attempt in (
            lambda: SqliteRegistry.from_url(f"sqlite://{path}"),
            opened.check,
            lambda: opened.hset(HKEY, "app", "w"),
        ):
            with pytest.raises(RegistryError) as info:
                attempt()
            assert not isinstance(info.value, RegistryUnavailable)
            assert "read-only" in str(info.value) or "readonly" in str(info.value)
            assert "chmod" in str(info.value) and "chattr -i" in str(info.value)
        assert opened.hget(HKEY, "app") == "v"  # reads still work
    opened.check()
    assert opened.hset(HKEY, "app", "w")
