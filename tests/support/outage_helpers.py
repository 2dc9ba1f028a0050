"""Helpers for the outage tests: sync managers on real backends, and log line counting.

A "site" here is one runner's instance directory with a plain (non-loop) volume, built
through ``build_sync_manager`` exactly as the runner builds it, so the backends are the
real factory output (retry wrappers included) and only the containers are faked.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from container_apps.layout import DataDir
from container_apps.sync import constants as C
from container_apps.sync.config import SyncConfig
from container_apps.sync.manager import SyncManager, SyncSite, build_sync_manager
from container_apps.tests.support.fakes import FakeContainers
from container_apps.volumes.binding import VolumeBinding

POLL = 1.0
KEY = "outage-key"


def make_site(data_root: Path, *, blobs: str | None, registry: str | None) -> SyncSite:
    """An instance dir under ``data_root`` with one volume at /app/data."""
    paths = DataDir(data_root).instance("app")
    paths.ensure()
    paths.volume_sync_dir.mkdir(parents=True, exist_ok=True)
    mount = paths.volume_mount("vol")
    mount.mkdir(parents=True, exist_ok=True)
    binding = VolumeBinding("vol", "fixed", mount, "/app/data")
    return SyncSite(
        paths=paths, bindings=[binding], node_id="node-a", blobs_url=blobs, registry_url=registry
    )


def build(role: str, site: SyncSite, containers: FakeContainers | None = None) -> SyncManager:
    """The manager ``car run`` would build for ``role`` on ``site`` (1 s polls)."""
    raw: dict[str, Any] = {"ENABLED": True, "KEY": KEY, "TYPE": role, "POLL_INTERVAL": POLL}
    return build_sync_manager(SyncConfig.parse(raw), site, containers or FakeContainers())


class Ticker:
    """Drives ``manager.tick`` on a fake monotonic clock, one poll interval per step."""

    def __init__(self, manager: SyncManager) -> None:
        self.manager = manager
        self.now = 0.0

    def tick(self, times: int = 1) -> None:
        for _ in range(times):
            self.now += POLL
            self.manager.tick(self.now)


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every WARNING-or-worse line logged so far, from any logger."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def lines_with(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    """Every line (any level) containing ``text``."""
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


def mount_of(site: SyncSite) -> Path:
    return site.bindings[0].host_root


def request(site: SyncSite, body: str) -> None:
    (site.paths.volume_sync_dir / C.REQUEST_FILE).write_text(body)


def response(site: SyncSite) -> dict[str, Any] | None:
    import json

    path = site.paths.volume_sync_dir / C.RESPONSE_FILE
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data
