"""A record written by another tool in the storage layouts is applied (docs/FORMAT.md).

Nothing from the provider code is used: the blob is copied by hand to ``<dir>/<cid>``
(the CID computed here from its definition, CIDv1 raw sha2-256 base32), the record is
inserted with the ``sqlite3`` module into the documented table, and it carries no
``archive_sha256``, ``unpacked_bytes`` or ``members`` (an older runner's manifest).
A ``SnapshotConsumer`` on the real ``file://`` store and ``sqlite://`` registry then
verifies the archive through its CID and applies it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from container_apps.registries.factory import open_registry
from container_apps.stores.factory import open_store
from container_apps.sync import constants as C
from container_apps.sync.consumer import ConsumerSettings, SnapshotConsumer
from container_apps.sync.paths import PathResolver
from container_apps.sync.record_source import RecordSource
from container_apps.tests.support.consumer_rig import (
    KEY,
    MOUNT,
    build_snapshot,
    leftovers,
    new_entries,
    seed_old,
)
from container_apps.tests.support.fakes import FakeContainers
from container_apps.volumes.binding import VolumeBinding

NOW = 1_764_400_000.0
LAYOUT_TABLE = (
    "CREATE TABLE registry (hkey TEXT, key TEXT, value TEXT NOT NULL, updated_at REAL, "
    "PRIMARY KEY (hkey, key))"
)


def _cidv1_raw_sha256(data: bytes) -> str:
    """CIDv1 from its definition: 0x01 (v1), 0x55 (raw), 0x12 0x20 (sha2-256, 32 bytes)."""
    raw = bytes([0x01, 0x55, 0x12, 0x20]) + hashlib.sha256(data).digest()
    return "b" + base64.b32encode(raw).decode().lower().rstrip("=")


def _old_runner_record(cid: str, size: int, **manifest_extra: Any) -> str:
    return json.dumps(
        {
            "cid": cid,
            "version": 1_764_300_000,
            "timestamp": 1_764_300_000.12,
            "node_id": "old-runner",
            "metadata": {"epoch": 7},
            "runtime": {"provider_capture": "offline", "consumer_apply": "offline_restart"},
            "manifest": {
                "schema_version": 1,
                "archive_paths": [MOUNT + "/"],
                "archive_format": "tar.gz",
                "archive_size_bytes": size,
                "encryption": "r1fs-default",
                "runtime": {"provider_capture": "offline", "consumer_apply": "offline_restart"},
                **manifest_extra,
            },
        }
    )


def _hand_publish(tmp: Path, archive: Path, record: str) -> None:
    db = tmp / "shared" / "registry.sqlite"
    db.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(db) as conn:
        conn.execute(LAYOUT_TABLE)
        conn.execute(
            "INSERT INTO registry VALUES (?, ?, ?, ?)", (C.CHAINSTORE_HKEY, KEY, record, NOW)
        )
    conn.close()
    blobs = tmp / "shared" / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(archive, blobs / _cidv1_raw_sha256(archive.read_bytes()))


def _consumer(tmp: Path) -> tuple[SnapshotConsumer, FakeContainers, Path, ConsumerSettings]:
    volume = tmp / "volume"
    volume.mkdir()
    seed_old(volume)
    store = open_store(f"file://{tmp / 'shared' / 'blobs'}", cache_dir=tmp / "cache")
    registry = open_registry(f"sqlite://{tmp / 'shared' / 'registry.sqlite'}")
    settings = ConsumerSettings(
        sync_state_dir=tmp / "sync_state",
        control_dir=tmp / "control",
        history_dir=tmp / "history" / "received",
    )
    settings.control_dir.mkdir()
    log = logging.getLogger("test.interop")
    containers = FakeContainers()
    consumer = SnapshotConsumer(
        settings,
        RecordSource(registry, KEY, 60.0, log),
        store,
        containers,
        PathResolver([VolumeBinding("data", "legacy", volume, MOUNT)]),
        log,
    )
    return consumer, containers, volume, settings


def test_hand_written_record_without_sha256_is_verified_by_cid_and_applied(
    tmp_path: Path,
) -> None:
    archive = build_snapshot(tmp_path / "old.tar.gz", new_entries(), C.ARCHIVE_FORMAT_GZ)
    cid = _cidv1_raw_sha256(archive.read_bytes())
    _hand_publish(tmp_path, archive, _old_runner_record(cid, archive.stat().st_size))
    consumer, containers, volume, settings = _consumer(tmp_path)
    outcome = consumer.tick(NOW)
    assert outcome is not None and outcome.applied, outcome
    assert containers.calls == ["stop", "start"]
    assert (volume / "replace.txt").read_bytes() == b"new bytes"
    assert (volume / "keep.txt").read_bytes() == b"kept"  # overlay
    assert leftovers(volume) == []
    last = json.loads((settings.control_dir / C.LAST_APPLY_FILE).read_text())
    assert (
        last["cid"] == cid and last["node_id"] == "old-runner" and last["metadata"] == {"epoch": 7}
    )
    # The shared blob stays for the other runners of this host.
    assert (tmp_path / "shared" / "blobs" / cid).exists()


def test_hand_written_record_whose_blob_does_not_match_its_cid_is_refused(
    tmp_path: Path,
) -> None:
    archive = build_snapshot(tmp_path / "old.tar.gz", new_entries(), C.ARCHIVE_FORMAT_GZ)
    real_cid = _cidv1_raw_sha256(archive.read_bytes())
    _hand_publish(tmp_path, archive, _old_runner_record(real_cid, archive.stat().st_size))
    # Another tool wrote different bytes under that CID (same size, one byte flipped).
    blob = tmp_path / "shared" / "blobs" / real_cid
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    consumer, containers, volume, _ = _consumer(tmp_path)
    before = sorted(p.name for p in volume.iterdir())
    outcome = consumer.tick(NOW)
    assert outcome is not None and not outcome.applied and outcome.kind == "digest"
    assert containers.calls == []
    assert sorted(p.name for p in volume.iterdir()) == before
    # The shared blob is kept (every runner's copy; its provider heals it with a put).
    assert blob.read_bytes() == bytes(data)


def test_hand_written_record_with_a_foreign_id_and_no_sha256_is_refused(tmp_path: Path) -> None:
    archive = build_snapshot(tmp_path / "old.tar.gz", new_entries(), C.ARCHIVE_FORMAT_GZ)
    _hand_publish(tmp_path, archive, _old_runner_record("Qm-foreign-id", archive.stat().st_size))
    consumer, containers, _, _ = _consumer(tmp_path)
    outcome = consumer.tick(NOW)
    assert outcome is not None and not outcome.applied and outcome.kind == "validation"
    assert "archive_sha256" in (outcome.error or "")
    assert containers.calls == []


def test_preflight_reads_a_cid_verified_download_only_once(tmp_path: Path, mocker) -> None:
    # The file store's get() hashes the blob against its CID; preflight must not hash
    # the same bytes again (the commit pass still hashes what it applies).
    archive = build_snapshot(tmp_path / "old.tar.gz", new_entries(), C.ARCHIVE_FORMAT_GZ)
    cid = _cidv1_raw_sha256(archive.read_bytes())
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    record = _old_runner_record(cid, archive.stat().st_size, archive_sha256=sha)
    _hand_publish(tmp_path, archive, record)
    rehash = mocker.patch("container_apps.sync.preflight.sha256_file")
    consumer, _, volume, _ = _consumer(tmp_path)
    outcome = consumer.tick(NOW)
    assert outcome is not None and outcome.applied, outcome
    rehash.assert_not_called()
    assert (volume / "replace.txt").read_bytes() == b"new bytes"
