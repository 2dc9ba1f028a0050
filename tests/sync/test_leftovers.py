"""What a killed or failed run leaves behind is swept, and downloads stay bounded (issue 9 item 6).

A start (``SyncManager.start``: the provider's and the consumer's ``recover``) removes
temp files whose writer died, in the shared ``file://`` store and in this instance's
``sync_state/downloads``, and every downloaded copy but the applied CID's. A failed
apply drops its download at once, so ``downloads/`` holds at most the applied snapshot
and the one being applied.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest
from container_apps.layout import DataDir
from container_apps.sync.config import SyncConfig
from container_apps.sync.manager import SyncSite, build_sync_manager
from container_apps.tests.support.consumer_rig import (
    Entry,
    Env,
    build_snapshot,
    d,
    f,
    make_env,
    make_record,
    new_entries,
    seed_old,
)
from container_apps.tests.support.fakes import FakeContainers
from container_apps.volumes.binding import VolumeBinding

NOW = 1_764_400_000.0


@pytest.fixture
def env(tmp_path: Path) -> Env:
    e = make_env(tmp_path)
    seed_old(e.volume)
    return e


def _publish(env: Env, name: str, entries: list[Entry]) -> str:
    archive = build_snapshot(env.tmp / name, entries)
    record = make_record(archive)
    env.publish(archive, record)
    return record.cid


def test_recover_keeps_only_the_applied_download_and_sweeps_abandoned_ones(env: Env) -> None:
    applied = _publish(env, "a.tar.zst", new_entries())
    outcome = env.consumer.tick(NOW)
    assert outcome is not None and outcome.applied
    never_applied = env.store.put(build_snapshot(env.tmp / "b.tar.zst", [d("app/data")]))
    env.store.get(never_applied)  # downloaded, then the runner was killed before applying
    (env.store.cache_dir / ".get-killed.tmp").write_bytes(b"partial download")

    env.consumer.recover(NOW + 1)

    assert sorted(os.listdir(env.store.cache_dir)) == [applied]


def test_failed_apply_drops_its_download(env: Env) -> None:
    cid = _publish(env, "bad.tar.zst", [d("app/data"), f("app/data/../../etc/passwd", b"x")])
    outcome = env.consumer.tick(NOW)
    assert outcome is not None and outcome.kind == "extract"
    assert not (env.store.cache_dir / cid).exists()


def _site(tmp_path: Path) -> SyncSite:
    paths = DataDir(tmp_path / "data").instance("app")
    paths.ensure()
    paths.volume_sync_dir.mkdir(parents=True)
    mount = paths.volume_mount("vol")
    mount.mkdir(parents=True)
    binding = VolumeBinding("vol", "fixed", mount, "/app/data")
    return SyncSite(paths=paths, bindings=[binding], node_id="node-a")


@pytest.mark.parametrize("role", ["provider", "consumer"])
def test_start_sweeps_dead_puts_in_the_shared_store_and_keeps_live_ones(
    tmp_path: Path, role: str
) -> None:
    site = _site(tmp_path)
    blobs = site.paths.data.shared_blobs
    blobs.mkdir(parents=True)
    dead = blobs / ".put-killed.tmp"
    dead.write_bytes(b"half an archive")
    live = blobs / ".put-other-runner.tmp"
    cfg = SyncConfig.parse({"ENABLED": True, "KEY": "k", "TYPE": role})
    manager = build_sync_manager(cfg, site, FakeContainers())
    with open(live, "wb") as writer:  # another runner's put, in flight
        fcntl.flock(writer.fileno(), fcntl.LOCK_EX)
        manager.start()
        assert live.exists()
    assert not dead.exists()
