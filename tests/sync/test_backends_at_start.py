"""Backends that cannot be used when the runner starts (real files and servers).

A garbage or read-only ``registry.sqlite``, a Redis port nobody listens on and a stopped
S3 server are outages like any other: the start goes on, one line names each backend
(redacted URL and error), the backend is re-checked with backoff, a request that arrives
meanwhile is answered ``in_progress`` and then for real once the backend works, and a
consumer applies the current record after the repair, all without a restart.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from container_apps.registries.sqlite import SqliteRegistry
from container_apps.sync import constants as C
from container_apps.sync.manager import SyncSite
from container_apps.tests.support.fakes import FakeContainers
from container_apps.tests.support.fixtures_servers import S3_ACCESS_KEY, S3_SECRET_KEY
from container_apps.tests.support.outage_helpers import (
    KEY,
    Ticker,
    build,
    lines_with,
    make_site,
    mount_of,
    request,
    response,
    warnings,
)
from container_apps.tests.support.parts import unavailable, used
from container_apps.tests.support.servers import free_port, start_weed, stop_process

GARBAGE = b"this is not an SQLite database\n" * 200


def _good_registry_copy(source: Path, dest: Path) -> None:
    """A consistent copy of a live WAL registry (the sqlite backup API), swapped in at once."""
    tmp = dest.with_name(dest.name + ".new")
    with (
        contextlib.closing(sqlite3.connect(source)) as src,
        contextlib.closing(sqlite3.connect(tmp)) as dst,
    ):
        src.backup(dst)
    os.replace(tmp, dest)


def _tick_until(ticker: Ticker, done: Callable[[], bool], limit: int = 120) -> None:
    for _ in range(limit):
        if done():
            return
        ticker.tick()
    assert done(), f"not done after {limit} ticks"


def _status(site: SyncSite) -> str | None:
    return (response(site) or {}).get("status")


def test_provider_started_on_a_garbage_registry_answers_after_the_file_is_repaired(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    shared = tmp_path / "shared"
    shared.mkdir()
    registry_file = shared / "registry.sqlite"
    registry_file.write_bytes(GARBAGE)
    site = make_site(tmp_path / "p", blobs=None, registry=f"sqlite://{registry_file}")
    (mount_of(site) / "payload.txt").write_text("v1")
    containers = FakeContainers()
    provider = Ticker(build("provider", site, containers))
    assert provider.manager.active  # the start goes on; sync is not switched off
    provider.manager.start()
    down = warnings(caplog)
    assert len(down) == 1, down
    assert f"sqlite://{registry_file}" in down[0] and "not a database" in down[0]

    request(site, json.dumps({"archive_paths": ["/app/data"], "request_id": "r-1"}))
    provider.tick(3)
    assert response(site) == {
        "status": "in_progress",
        "request_id": "r-1",
        "archive_paths": ["/app/data"],
    }
    assert containers.calls == []  # the app is not stopped for a publish that cannot land

    good = tmp_path / "good.sqlite"
    SqliteRegistry.from_url(f"sqlite://{good}").hsync(C.CHAINSTORE_HKEY)
    _good_registry_copy(good, registry_file)
    _tick_until(provider, lambda: _status(site) == "ok")
    answer = response(site)
    assert answer is not None and answer["request_id"] == "r-1"
    record = SqliteRegistry.from_url(f"sqlite://{registry_file}").hget(C.CHAINSTORE_HKEY, KEY)
    assert record is not None and answer["cid"] in record
    assert len(warnings(caplog)) == 1, warnings(caplog)
    assert len(lines_with(caplog, "reachable again")) == 1


def test_consumer_started_on_a_garbage_registry_applies_after_the_file_is_repaired(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    blobs = f"file://{tmp_path / 'shared' / 'blobs'}"
    good = tmp_path / "provider-registry.sqlite"
    provider_site = make_site(tmp_path / "p", blobs=blobs, registry=f"sqlite://{good}")
    (mount_of(provider_site) / "payload.txt").write_text("published")
    provider = Ticker(build("provider", provider_site))
    provider.manager.start()
    request(provider_site, '{"archive_paths": ["/app/data"]}')
    provider.tick()
    assert _status(provider_site) == "ok", response(provider_site)
    caplog.clear()

    registry_file = tmp_path / "shared" / "registry.sqlite"
    registry_file.write_bytes(GARBAGE)
    site = make_site(tmp_path / "c", blobs=blobs, registry=f"sqlite://{registry_file}")
    consumer = Ticker(build("consumer", site))
    consumer.manager.start()
    assert consumer.manager.may_start()
    consumer.tick(3)
    assert not (mount_of(site) / "payload.txt").exists()
    assert len(warnings(caplog)) == 1, warnings(caplog)

    _good_registry_copy(good, registry_file)
    _tick_until(consumer, lambda: (mount_of(site) / "payload.txt").exists())
    assert (mount_of(site) / "payload.txt").read_text() == "published"
    assert len(warnings(caplog)) == 1, warnings(caplog)
    assert len(lines_with(caplog, "reachable again")) == 1


@contextlib.contextmanager
def _read_only(path: Path) -> Iterator[None]:
    """``path`` read-only even for root: mode 0444 plus the immutable attribute."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr not installed (e2fsprogs)")
    os.chmod(path, 0o444)
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
    if done.returncode != 0:
        os.chmod(path, 0o644)
        pytest.skip(f"chattr +i unsupported here: {done.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=False)
        os.chmod(path, 0o644)


def test_provider_started_on_a_read_only_registry_says_the_fix_and_answers_after_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    registry_file = tmp_path / "shared" / "registry.sqlite"
    registry_file.parent.mkdir()
    SqliteRegistry.from_url(f"sqlite://{registry_file}").hset(C.CHAINSTORE_HKEY, "other", "{}")
    site = make_site(tmp_path / "p", blobs=None, registry=f"sqlite://{registry_file}")
    (mount_of(site) / "payload.txt").write_text("v1")
    containers = FakeContainers()
    provider = Ticker(build("provider", site, containers))
    with _read_only(registry_file):
        provider.manager.start()
        down = warnings(caplog)
        assert len(down) == 1, down
        assert "read-only" in down[0] and "chattr -i" in down[0] and "chmod" in down[0]
        request(site, '{"archive_paths": ["/app/data"]}')
        provider.tick(3)
        assert _status(site) == "in_progress"
        assert containers.calls == []
    _tick_until(provider, lambda: _status(site) == "ok")
    assert len(warnings(caplog)) == 1, warnings(caplog)
    assert len(lines_with(caplog, "reachable again")) == 1


@pytest.mark.s3
@pytest.mark.parametrize("role", ["provider", "consumer"])
def test_unreachable_registry_and_s3_are_each_named_once_at_start(
    role: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY)
    caplog.set_level(logging.DEBUG)
    try:
        weed = start_weed(tmp_path / "weed", S3_ACCESS_KEY, S3_SECRET_KEY)
    except (OSError, RuntimeError, TimeoutError) as exc:
        unavailable("s3", str(exc))
    used("s3")
    endpoint = f"http://127.0.0.1:{weed.ports['s3']}"
    stop_process(weed)  # a real S3 endpoint, now down
    closed = free_port()
    site = make_site(
        tmp_path / "d",
        blobs=f"s3://bucket-x/car?endpoint_url={endpoint}",
        registry=f"redis://:pa55word@127.0.0.1:{closed}/0",
    )
    manager = build(role, site)
    assert manager.active
    manager.start()  # does not raise, does not wait for a request
    assert manager.may_start()
    down = warnings(caplog)
    assert len(down) == 2, down
    registry_line = next(line for line in down if "redis://" in line)
    store_line = next(line for line in down if "s3://" in line)
    assert f"redis://:***@127.0.0.1:{closed}/0" in registry_line
    assert "cannot reach" in registry_line
    assert endpoint in store_line and "cannot reach" in store_line
    assert all("pa55word" not in r.getMessage() for r in caplog.records)
