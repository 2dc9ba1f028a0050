"""Secrets from ``${VAR}`` and ``*_FILE`` never reach logs, status, history or --json.

A real redis-server that requires a password; the runner config file names it only as
``${CAR_TEST_REDIS_PW}`` or through ``STORAGE.REGISTRY_FILE``. The provider publishes
through ``build_sync_manager`` as ``car run`` would, then every log line (DEBUG
included), every file under the data directory and the output of ``car sync status`` and
``car sync history`` (text and --json) are searched for the password.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from container_apps.cli import app
from container_apps.layout import DataDir
from container_apps.runner.config_file import load_runner_config
from container_apps.runner.runner_config import RunnerConfig
from container_apps.sync.manager import SyncSite, build_sync_manager
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
from container_apps.tests.support.parts import unavailable, used
from container_apps.tests.support.servers import ServerProcess, start_redis, stop_process
from typer.testing import CliRunner

pytestmark = pytest.mark.redis
PASSWORD = "pw-7f3a9c-never-shown"


@pytest.fixture(scope="module")
def locked_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The port of a redis-server started with ``--requirepass PASSWORD``."""
    try:
        server: ServerProcess = start_redis(tmp_path_factory.mktemp("redis-pw"), password=PASSWORD)
    except (FileNotFoundError, TimeoutError, OSError) as exc:
        unavailable("redis", str(exc))
    used("redis")
    try:
        yield server.ports["redis"]
    finally:
        stop_process(server)


def _config(tmp_path: Path, storage: dict[str, str], env: dict[str, str]) -> RunnerConfig:
    raw = {
        "INSTANCE_ID": "app",
        "IMAGE": "busybox:latest",
        "SYNC": {"ENABLED": True, "KEY": KEY, "TYPE": "provider", "POLL_INTERVAL": POLL},
        "STORAGE": storage,
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw))
    return load_runner_config(path, environ=env)


def _publish(tmp_path: Path, cfg: RunnerConfig) -> tuple[SyncSite, dict[str, object] | None]:
    site = make_site(tmp_path / "data", blobs=None, registry=cfg.storage.registry)
    (mount_of(site) / "f.txt").write_text("payload")
    manager = build_sync_manager(cfg.sync, site, FakeContainers())
    manager.start()
    request(site, json.dumps({"archive_paths": ["/app/data"]}))
    ticker = Ticker(manager)
    for _ in range(5):
        ticker.tick()
        if (response(site) or {}).get("status") in ("ok", "error"):
            break
    return site, response(site)


def _everything_shown(site: SyncSite, caplog: pytest.LogCaptureFixture) -> str:
    """Every log line, every file the runner wrote, and the CLI's views of them."""
    shown = [r.getMessage() for r in caplog.records]
    shown += [str(r.exc_info) for r in caplog.records if r.exc_info]
    data = DataDir(site.paths.data.root)
    for path in sorted(data.root.rglob("*")):
        if path.is_file() and path.suffix in (".json", ".jsonl", ""):
            shown.append(path.read_text(errors="replace"))
    for args in (["status"], ["status", "--json"], ["history"], ["history", "--json"]):
        result = CliRunner().invoke(app, ["sync", *args, "--data-dir", str(data.root)])
        shown.append(result.output)
    return "\n".join(shown)


def test_a_password_from_an_environment_variable_is_never_shown(
    tmp_path: Path, locked_redis: int, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"redis://:${{CAR_TEST_REDIS_PW}}@127.0.0.1:{locked_redis}/0?namespace=env"
    cfg = _config(tmp_path, {"REGISTRY": url}, {"CAR_TEST_REDIS_PW": PASSWORD})
    with caplog.at_level(logging.DEBUG):
        site, answer = _publish(tmp_path, cfg)
    assert answer is not None and answer["status"] == "ok"
    everything = _everything_shown(site, caplog)
    assert f"redis://:***@127.0.0.1:{locked_redis}/0" in everything  # status names it
    assert PASSWORD not in everything


def test_a_password_from_a_registry_file_is_never_shown(
    tmp_path: Path, locked_redis: int, caplog: pytest.LogCaptureFixture
) -> None:
    secret = tmp_path / "registry.url"
    secret.write_text(f"redis://:{PASSWORD}@127.0.0.1:{locked_redis}/0?namespace=file\n")
    secret.chmod(0o600)
    cfg = _config(tmp_path, {"REGISTRY_FILE": str(secret)}, {})
    with caplog.at_level(logging.DEBUG):
        site, answer = _publish(tmp_path, cfg)
    assert answer is not None and answer["status"] == "ok"
    assert PASSWORD not in _everything_shown(site, caplog)


def test_a_wrong_password_fails_with_a_message_that_does_not_show_it(
    tmp_path: Path, locked_redis: int, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "wrong-pw-5e1d-never-shown"
    url = f"redis://:${{CAR_TEST_REDIS_PW}}@127.0.0.1:{locked_redis}/0?namespace=bad"
    cfg = _config(tmp_path, {"REGISTRY": url}, {"CAR_TEST_REDIS_PW": wrong})
    with caplog.at_level(logging.DEBUG):
        site, _ = _publish(tmp_path, cfg)
    everything = _everything_shown(site, caplog)
    assert "authentication failed" in everything
    assert wrong not in everything and PASSWORD not in everything
