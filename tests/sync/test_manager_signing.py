"""The manager wires signing: the key is loaded at start; the status says what is verified."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from container_apps.cli import app
from container_apps.layout import DataDir
from container_apps.sync.config import SyncConfig
from container_apps.sync.manager import SyncSite, build_sync_manager
from container_apps.sync.status import instance_status
from container_apps.tests.support.fakes import FakeContainers
from container_apps.tests.support.signing_keys import key_file
from container_apps.volumes.binding import VolumeBinding
from typer.testing import CliRunner

PROVIDER = {"ENABLED": True, "KEY": "k", "TYPE": "provider", "POLL_INTERVAL": 2}
CONSUMER = {"ENABLED": True, "KEY": "k", "TYPE": "consumer", "POLL_INTERVAL": 2}


def _site(tmp_path: Path, name: str = "app") -> SyncSite:
    paths = DataDir(tmp_path / "data").instance(name)
    paths.ensure()
    paths.volume_sync_dir.mkdir(parents=True)
    mount = paths.volume_mount("vol")
    mount.mkdir(parents=True)
    binding = VolumeBinding("vol", "fixed", mount, "/app/data")
    return SyncSite(paths=paths, bindings=[binding], node_id="node-a")


def _build(tmp_path: Path, raw: dict[str, Any], name: str = "app") -> Any:
    site = _site(tmp_path, name)
    return build_sync_manager(SyncConfig.parse(raw), site, FakeContainers()), site


def test_provider_with_a_signing_key_gets_a_signer_and_says_signed(tmp_path: Path) -> None:
    path, line = key_file(tmp_path / "keys")
    manager, site = _build(tmp_path, {**PROVIDER, "SIGNING_KEY_FILE": str(path)})
    assert manager.publisher.config.signer.public_key == line
    assert instance_status(site.paths)["records"] == "signed"


def test_a_key_made_readable_after_the_config_was_read_turns_sync_off(tmp_path: Path) -> None:
    path, _ = key_file(tmp_path / "keys")
    cfg = SyncConfig.parse({**PROVIDER, "SIGNING_KEY_FILE": str(path)})
    path.chmod(0o644)  # between `car run` reading the config and the sync start
    site = _site(tmp_path)
    manager = build_sync_manager(cfg, site, FakeContainers())
    assert not manager.active and manager.publisher is None  # never publishes unsigned
    reason = manager.disabled_reason or ""
    assert reason.startswith("SYNC.SIGNING_KEY_FILE: ") and "readable by group" in reason
    assert instance_status(site.paths)["sync_disabled_reason"] == reason


def test_consumer_status_says_whether_records_are_verified(tmp_path: Path) -> None:
    _, line = key_file(tmp_path / "keys")
    unverified, site_a = _build(tmp_path, CONSUMER, "plain")
    verified, site_b = _build(tmp_path, {**CONSUMER, "TRUSTED_KEYS": [line]}, "strict")
    assert unverified.consumer is not None and verified.consumer is not None
    assert instance_status(site_a.paths)["records"] == "not verified (no SYNC.TRUSTED_KEYS)"
    assert instance_status(site_b.paths)["records"] == "verified (1 trusted key(s))"
    result = CliRunner().invoke(
        app, ["sync", "status", "--data-dir", str(tmp_path / "data"), "--json"]
    )
    by_id = {s["instance_id"]: s for s in json.loads(result.output)}
    assert by_id["plain"]["records"].startswith("not verified")
    text = CliRunner().invoke(
        app, ["sync", "status", "plain", "--data-dir", str(tmp_path / "data")]
    )
    assert "records    not verified (no SYNC.TRUSTED_KEYS)" in text.output
