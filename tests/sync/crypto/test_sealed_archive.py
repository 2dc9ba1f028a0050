"""A sealed tar.zst (docs/FORMAT.md, "Encryption at rest") is read through
``open_archive`` segment by segment; another key or a cut-short file is refused."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
import zstandard
from container_apps.errors import SnapshotInvalid
from container_apps.stores.cid import sha256_file
from container_apps.sync.archive_read import iter_members, open_archive
from container_apps.sync.crypto.framing import SealedBlobInvalid, Sealer
from container_apps.sync.crypto.keys import derive_keys

SEALER = Sealer(derive_keys(b"a" * 32))


def _sealed_archive(tmp_path: Path) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("data/secret-plans.txt", "data/big.bin"):
            body = os.urandom(300_000) if name.endswith(".bin") else b"plans\n"
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    path = tmp_path / "snap.tar.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(buf.getvalue()))
    return path


def _names(path: Path, sealer: Sealer) -> list[str]:
    with open_archive(path, "tar.zst", sealer) as (tar, _):
        return [m.name for m in iter_members(tar)]


def test_a_sealed_archive_reads_like_the_plain_one_and_hashes_what_is_stored(
    tmp_path: Path,
) -> None:
    path = _sealed_archive(tmp_path)
    sha256, size = SEALER.seal_in_place(path)
    data = path.read_bytes()
    assert size == len(data) and sha256 == sha256_file(path)
    assert b"secret-plans" not in data and bytes.fromhex("28b52ffd") not in data
    with open_archive(path, "tar.zst", SEALER) as (tar, reader):
        names = [m.name for m in iter_members(tar)]
        reader.drain()
        assert reader.hexdigest() == sha256
    assert names == ["data/secret-plans.txt", "data/big.bin"]


def test_another_key_or_a_cut_short_archive_is_refused(tmp_path: Path) -> None:
    path = _sealed_archive(tmp_path)
    SEALER.seal_in_place(path)
    other = Sealer(derive_keys(b"b" * 32))
    with pytest.raises(SealedBlobInvalid, match="wrong ENCRYPTION_KEY_FILE"):
        _names(path, other)
    path.write_bytes(path.read_bytes()[:-100])  # the tar's end lies in the cut segment
    with pytest.raises(SnapshotInvalid, match="fails authentication"):
        _names(path, SEALER)


def test_a_plain_archive_is_not_taken_for_a_sealed_one(tmp_path: Path) -> None:
    path = _sealed_archive(tmp_path)
    with pytest.raises(SealedBlobInvalid, match="not a sealed blob"):
        _names(path, SEALER)
