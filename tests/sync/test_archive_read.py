"""Streaming archive reader: formats, magic check, corrupt streams, flat memory, hashing."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest
from container_apps.errors import SnapshotInvalid
from container_apps.sync import constants as C
from container_apps.sync.archive_read import iter_members, open_archive, read_member
from container_apps.tests.support.consumer_rig import build_snapshot, d, f


@pytest.mark.parametrize("fmt", [C.ARCHIVE_FORMAT_ZST, C.ARCHIVE_FORMAT_GZ])
def test_open_archive_streams_members_and_data(tmp_path: Path, fmt: str) -> None:
    path = build_snapshot(tmp_path / "a", [d("app/data"), f("app/data/x", b"hello")], fmt)
    with open_archive(path, fmt) as (tar, _):
        seen = []
        for member in iter_members(tar):
            data = read_member(tar, member).read() if member.isreg() else None
            seen.append((member.name, data))
    assert seen == [("app/data", None), ("app/data/x", b"hello")]


def test_iter_members_keeps_no_members_in_memory(tmp_path: Path) -> None:
    entries = [d("app/data")] + [f(f"app/data/{i}", b"") for i in range(500)]
    path = build_snapshot(tmp_path / "a", entries)
    with open_archive(path, C.ARCHIVE_FORMAT_ZST) as (tar, _):
        count = 0
        for _member in iter_members(tar):
            count += 1
            assert len(tar.members) == 0  # type: ignore[attr-defined]
    assert count == 501


def test_reader_hash_covers_every_byte_after_drain(tmp_path: Path) -> None:
    path = build_snapshot(tmp_path / "a", [f("app/data/x", b"y" * 100_000)])
    with open_archive(path, C.ARCHIVE_FORMAT_ZST) as (tar, reader):
        for _ in iter_members(tar):
            pass
        reader.drain()
        assert reader.hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()


def test_format_that_does_not_match_magic_bytes_is_refused(tmp_path: Path) -> None:
    path = build_snapshot(tmp_path / "a", [f("app/data/x", b"1")], C.ARCHIVE_FORMAT_GZ)
    with pytest.raises(SnapshotInvalid) as info, open_archive(path, C.ARCHIVE_FORMAT_ZST):
        pass
    assert "not a tar.zst" in str(info.value) and info.value.stage == "extract"


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    path = build_snapshot(tmp_path / "a", [f("app/data/x", b"1")])
    with pytest.raises(SnapshotInvalid), open_archive(path, "tar.xz"):
        pass


def test_truncated_stream_raises_snapshot_invalid_not_a_library_error(tmp_path: Path) -> None:
    path = build_snapshot(tmp_path / "a", [f("app/data/x", bytes(range(256)) * 4000)])
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with (
        pytest.raises(SnapshotInvalid) as info,
        open_archive(path, C.ARCHIVE_FORMAT_ZST) as (tar, _),
    ):
        for member in iter_members(tar):
            read_member(tar, member).read()
    assert info.value.stage == "extract"


def test_gzip_of_non_tar_data_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a"
    path.write_bytes(gzip.compress(b"not a tar" * 100))
    with pytest.raises(SnapshotInvalid), open_archive(path, C.ARCHIVE_FORMAT_GZ) as (tar, _):
        list(iter_members(tar))
