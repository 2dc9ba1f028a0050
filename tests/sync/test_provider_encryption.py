"""The provider with SYNC.ENCRYPTION_KEY_FILE (README, "Encryption at rest"): what it
stores is sealed and the record's ``encryption`` tells the truth for every format."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from container_apps.sync import constants as C
from container_apps.sync.chunked_publish import ChunkedSnapshotPublisher
from container_apps.sync.config import SyncConfig
from container_apps.sync.crypto.framing import Sealer
from container_apps.sync.crypto.keys import derive_keys
from container_apps.sync.manager import sealer_of
from container_apps.tests.support.provider_rig import NOW, make_rig

SEALER = Sealer(derive_keys(b"p" * 32))
ZSTD_MAGIC = bytes.fromhex("28b52ffd")


@pytest.mark.parametrize(
    ("fmt", "sealer", "label"),
    [
        (C.ARCHIVE_FORMAT_ZST, SEALER, C.ENCRYPTION_SEALED),
        (C.ARCHIVE_FORMAT_CHUNKED, SEALER, C.ENCRYPTION_SEALED),
        (C.ARCHIVE_FORMAT_ZST, None, C.ENCRYPTION_NONE),
        (C.ARCHIVE_FORMAT_CHUNKED, None, C.ENCRYPTION_NONE),
        (C.ARCHIVE_FORMAT_GZ, None, C.ENCRYPTION_DEFAULT),
    ],
)
def test_the_record_says_what_protects_the_stored_blobs(
    tmp_path: Path, fmt: str, sealer: Sealer | None, label: str
) -> None:
    kind = ChunkedSnapshotPublisher if fmt == C.ARCHIVE_FORMAT_CHUNKED else None
    extra = {"publisher_cls": kind} if kind else {}
    rig = make_rig(tmp_path, archive_format=fmt, sealer=sealer, **extra)
    rig.request({"archive_paths": ["/app/data/"]})
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.status == "ok", outcome
    record = rig.record()
    assert record["manifest"]["encryption"] == label
    blob = rig.store.inner.stored(record["cid"])
    assert hashlib.sha256(blob).hexdigest() == record["manifest"]["archive_sha256"]
    if sealer is not None:
        assert blob.startswith(b"CARSEAL1") and ZSTD_MAGIC not in blob and b"b.txt" not in blob
        assert record["manifest"]["archive_size_bytes"] >= len(blob)


def test_the_manager_hands_the_key_files_sealer_to_both_roles(tmp_path: Path) -> None:
    key = tmp_path / "k"
    key.write_bytes(b"\x05" * 32)
    os.chmod(key, 0o600)
    cfg = SyncConfig.parse(
        {"ENABLED": True, "KEY": "k", "TYPE": "consumer", "ENCRYPTION_KEY_FILE": str(key)}
    )
    sealer = sealer_of(cfg)
    assert sealer is not None and sealer.keys == derive_keys(b"\x05" * 32)
    assert sealer_of(SyncConfig.parse({"ENABLED": True, "KEY": "k", "TYPE": "consumer"})) is None
