"""What the registry holds now, as `car sync status` reads it: real Redis and SQLite, bounded."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from container_apps.registries.factory import open_registry
from container_apps.sync import constants as C
from container_apps.sync.records import SyncRecord
from container_apps.sync.registry_view import registry_view
from container_apps.tests.support.consumer_rig import make_record
from container_apps.tests.support.servers import ServerProcess, stop_process

VERSION = 1_796_139_814  # 2026-12-01T15:43:34Z


def _record(tmp_path: Path) -> SyncRecord:
    archive = tmp_path / "archive.tar.zst"
    archive.write_bytes(b"not really an archive")
    return make_record(archive, node_id="node-a", version=VERSION)


def test_a_real_redis_record_is_shown_with_utc_time_and_node(
    tmp_path: Path, redis_registry_url: str
) -> None:
    record = _record(tmp_path)
    open_registry(redis_registry_url).hset(C.CHAINSTORE_HKEY, "k", record.to_json())
    view = registry_view(redis_registry_url, "k")
    assert view is not None and view["error"] is None
    assert view["record"] == {
        "cid": record.cid,
        "version": VERSION,
        "timestamp": VERSION + 0.5,
        "time_utc": "2026-12-01T15:43:34Z",
        "node_id": "node-a",
    }


def test_a_key_without_record_is_no_record_and_no_error(redis_registry_url: str) -> None:
    view = registry_view(redis_registry_url, "nobody-publishes-this")
    assert view == {"url": redis_registry_url, "record": None, "error": None, "invalid": None}


def test_a_stopped_redis_is_reported_unreachable_at_once(
    tmp_path: Path, private_redis: ServerProcess
) -> None:
    url = f"redis://127.0.0.1:{private_redis.ports['redis']}/0"
    open_registry(url).hset(C.CHAINSTORE_HKEY, "k", _record(tmp_path).to_json())
    assert registry_view(url, "k")["record"] is not None  # type: ignore[index]
    stop_process(private_redis)
    started = time.monotonic()
    view = registry_view(url, "k")
    assert time.monotonic() - started < 3.0
    assert view is not None and view["record"] is None
    assert "cannot reach the server" in view["error"]


def test_a_server_that_never_answers_is_given_up_after_the_timeout() -> None:
    # The kernel completes the connection from the listen backlog; nothing ever replies.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        started = time.monotonic()
        view = registry_view(url, "k", timeout=1.0)
        took = time.monotonic() - started
    assert view == {"url": url, "record": None, "error": "no answer within 1 s", "invalid": None}
    assert 0.9 < took < 2.0


def test_a_missing_sqlite_registry_is_reported_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "shared" / "registry.sqlite"
    view = registry_view(f"sqlite://{path}", "k")
    assert view is not None and view["error"] == "the file does not exist"
    assert not path.parent.exists()


def test_a_sqlite_registry_record_is_shown(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'registry.sqlite'}"
    record = _record(tmp_path)
    open_registry(url).hset(C.CHAINSTORE_HKEY, "k", record.to_json())
    view = registry_view(url, "k")
    assert view is not None and view["record"]["cid"] == record.cid


def test_an_invalid_record_is_an_error_naming_the_key(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'registry.sqlite'}"
    open_registry(url).hset(C.CHAINSTORE_HKEY, "k", '{"cid": 5}')
    view = registry_view(url, "k")
    assert view is not None and view["record"] is None and view["error"] is None
    assert view["invalid"] and "cid" in view["invalid"]


def test_a_redacted_url_is_not_tried_and_says_why() -> None:
    view = registry_view("redis://:***@127.0.0.1:1/0", "k")
    assert view is not None and "without its password" in view["error"]
    assert view["url"] == "redis://:***@127.0.0.1:1/0"


def test_no_registry_or_no_key_means_no_view() -> None:
    assert registry_view(None, "k") is None
    assert registry_view("sqlite:///x.sqlite", None) is None
