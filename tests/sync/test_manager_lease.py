"""The lease through ``build_sync_manager`` and its ticks, as ``car run`` drives it.

Two provider runners on different nodes share a real SQLite registry and a file store.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from container_apps.cli import app
from container_apps.sync.config import SyncConfig
from container_apps.sync.lease_keeper import lease_seconds
from container_apps.sync.manager import SyncManager, SyncSite, build_sync_manager
from container_apps.tests.support.fakes import FakeContainers
from container_apps.tests.support.outage_helpers import (
    KEY,
    POLL,
    Ticker,
    make_site,
    mount_of,
    request,
    response,
)
from typer.testing import CliRunner


def _provider(tmp_path: Path, node: str, **extra: Any) -> tuple[SyncSite, SyncManager]:
    site = make_site(
        tmp_path / node,
        blobs=f"file://{tmp_path}/blobs",
        registry=f"sqlite://{tmp_path}/registry.sqlite",
    )
    site = dataclasses.replace(site, node_id=node)
    (mount_of(site) / "f.txt").write_text(f"from {node}")
    raw = {"ENABLED": True, "KEY": KEY, "TYPE": "provider", "POLL_INTERVAL": POLL, **extra}
    return site, build_sync_manager(SyncConfig.parse(raw), site, FakeContainers())


def _status_json(site: SyncSite) -> dict[str, Any]:
    out = (
        CliRunner()
        .invoke(app, ["sync", "status", "--json", "--data-dir", str(site.paths.data.root)])
        .output
    )
    result: dict[str, Any] = json.loads(out)[0]
    return result


def test_lease_lasts_a_minute_or_three_ticks() -> None:
    assert lease_seconds(10) == 60
    assert lease_seconds(45) == 135


def test_ticks_hold_the_lease_and_takeover_is_logged_on_both_sides(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    site_a, manager_a = _provider(tmp_path, "node-a")
    site_b, manager_b = _provider(tmp_path, "node-b", TAKEOVER=True)
    ticker_a, ticker_b = Ticker(manager_a), Ticker(manager_b)
    caplog.set_level(logging.INFO)
    manager_a.start()
    assert _status_json(site_a)["lease"]["held"] is True

    manager_b.start()  # TAKEOVER: takes the live lease at its first renew
    assert any(
        "took over the lease" in r.getMessage() and "node node-a instance app" in r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING
    )
    ticker_a.tick()  # the old holder's next tick
    assert any(
        "lost the lease" in r.getMessage() and "node node-b instance app" in r.getMessage()
        for r in caplog.records
        if r.levelno == logging.ERROR
    )

    request(site_a, json.dumps({"archive_paths": ["/app/data"], "request_id": "a1"}))
    ticker_a.tick()
    refused = response(site_a)
    assert refused is not None and refused["stage"] == "chainstore_publish"
    assert "node node-b instance app" in refused["error"] and refused["request_id"] == "a1"
    status_a = _status_json(site_a)["lease"]
    assert status_a["held"] is False and status_a["holder_node_id"] == "node-b"
    text = (
        CliRunner()
        .invoke(app, ["sync", "status", "--data-dir", str(site_a.paths.data.root)])
        .output
    )
    assert "lease      held by node node-b instance app until" in text

    request(site_b, json.dumps({"archive_paths": ["/app/data"]}))
    ticker_b.tick()
    published = response(site_b)
    assert published is not None and published.get("cid")
