"""ChunkedSnapshotWriter: what is read, what is stored, and what is refused."""

from __future__ import annotations

import os
import socket
from dataclasses import replace
from pathlib import Path

import pytest
from container_apps.errors import SyncError
from container_apps.stores.cid import cid_for_file
from container_apps.sync import constants as C
from container_apps.sync.chunks import constants as K
from container_apps.sync.chunks.facts import SourceFacts
from container_apps.sync.chunks.index import known_chunks
from container_apps.sync.chunks.index_parse import parse_index
from container_apps.sync.chunks.staged import PreviousSnapshot, StagedSnapshot
from container_apps.sync.paths import ResolvedPath
from container_apps.tests.support.chunk_helpers import make_tree, sources, volume, writer
from container_apps.tests.support.random_data import MiB, random_bytes
from pytest_mock import MockerFixture


def capture(
    tmp_path: Path, root: Path, previous: StagedSnapshot | None = None, name: str = "s1"
) -> StagedSnapshot:
    prev = (
        PreviousSnapshot(previous.index_cid, previous.index, previous.facts) if previous else None
    )
    return writer(tmp_path, name).write(sources(root), prev)


def test_full_capture_lists_every_entry_with_its_metadata(tmp_path: Path) -> None:
    root = volume(tmp_path)
    make_tree(root)
    staged = capture(tmp_path, root)
    by_path = {e.path: e for e in staged.index.entries}
    assert staged.index.roots == ("app/data",)
    assert set(by_path) == {
        "app/data",
        "app/data/big.txt",
        "app/data/docs",
        "app/data/docs/deep",
        "app/data/docs/deep/er",
        "app/data/docs/deep/er/tiny",
        "app/data/docs/deep/random.bin",
        "app/data/docs/readme.txt",
        "app/data/empty-dir",
        "app/data/empty.file",
    }
    assert [e.path for e in staged.index.entries][:3] == [
        "app/data",
        "app/data/big.txt",
        "app/data/docs",
    ]
    big = by_path["app/data/big.txt"]
    assert (big.kind, big.size, big.mtime_ns) == ("file", 3 * MiB, 1_600_000_000_123_456_789)
    assert by_path["app/data/docs/readme.txt"].mode == 0o640
    assert (
        by_path["app/data/docs/deep"].kind == "dir" and by_path["app/data/docs/deep"].mode == 0o750
    )
    assert by_path["app/data/empty.file"].chunks == ()
    assert all(c.compressed for c in big.chunks)
    assert not any(c.compressed for c in by_path["app/data/docs/deep/random.bin"].chunks)
    s = staged.stats
    assert (s.files, s.dirs, s.files_read, s.files_reused) == (5, 5, 5, 0)
    assert s.bytes_read == s.bytes_new == 3 * MiB + 300_000 + 2 * MiB + 17 + 1


def test_staged_files_are_the_index_blob_and_packs_named_by_their_cids(tmp_path: Path) -> None:
    root = volume(tmp_path)
    make_tree(root)
    staged = capture(tmp_path, root)
    assert staged.index_path.name == staged.index_cid == cid_for_file(staged.index_path)
    assert parse_index(staged.index_path.read_bytes()) == staged.index
    assert staged.pack_paths
    for path in staged.pack_paths:
        assert path.name == cid_for_file(path)
        assert path.read_bytes().startswith(K.PACK_MAGIC)
    assert set(staged.pack_cids) == set(staged.index.packs())
    assert staged.stats.stored_bytes_new == sum(p.stat().st_size for p in staged.pack_paths)
    assert staged.facts.index_cid == staged.index_cid
    assert set(staged.facts.files) == {e.path for e in staged.index.files()}


def test_unchanged_tree_reads_nothing_and_stores_nothing(tmp_path: Path) -> None:
    root = volume(tmp_path)
    make_tree(root)
    first = capture(tmp_path, root)
    second = capture(tmp_path, root, first, "s2")
    assert (second.stats.files_read, second.stats.files_reused) == (0, 5)
    assert second.stats.bytes_read == 0 and second.pack_paths == ()
    assert second.index_cid == first.index_cid


def test_one_changed_file_is_the_only_one_read_and_only_its_chunks_are_new(tmp_path: Path) -> None:
    root = volume(tmp_path)
    for n in range(8):
        (root / f"f{n}.bin").write_bytes(random_bytes(MiB + n, seed=n))
    first = capture(tmp_path, root)
    (root / "f3.bin").write_bytes(random_bytes(MiB + 3, seed=99))
    second = capture(tmp_path, root, first, "s2")
    s = second.stats
    assert (s.files_read, s.files_reused, s.bytes_read) == (1, 7, MiB + 3)
    f3 = next(e for e in second.index.files() if e.path == "app/data/f3.bin")
    assert (s.chunks_new, s.bytes_new) == (len(f3.chunks), MiB + 3)
    assert len(second.pack_paths) == 1
    old = known_chunks([first.index])
    new_refs = [c for e in second.index.files() for c in e.chunks if c.digest not in old]
    assert new_refs == list(f3.chunks)


def test_a_changed_ctime_alone_forces_a_read_but_stores_nothing_new(tmp_path: Path) -> None:
    root = volume(tmp_path)
    make_tree(root)
    first = capture(tmp_path, root)
    os.chmod(root / "big.txt", 0o600)  # ctime changes; content and mtime do not
    second = capture(tmp_path, root, first, "s2")
    assert (second.stats.files_read, second.stats.chunks_new) == (1, 0)
    assert second.pack_paths == ()
    assert {e.path: e.mode for e in second.index.files()}["app/data/big.txt"] == 0o600


def test_a_file_with_the_same_facts_but_another_inode_is_read_again(tmp_path: Path) -> None:
    root = volume(tmp_path)
    (root / "a").write_bytes(b"first")
    first = capture(tmp_path, root)
    replacement = root / "a.new"
    replacement.write_bytes(b"other")
    st = (root / "a").stat()
    os.utime(replacement, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(replacement, root / "a")
    second = capture(tmp_path, root, first, "s2")
    assert second.stats.files_read == 1
    assert second.stats.chunks_new == 1


def test_facts_of_another_index_mean_a_full_read_that_still_stores_nothing_twice(
    tmp_path: Path,
) -> None:
    root = volume(tmp_path)
    make_tree(root)
    first = capture(tmp_path, root)
    stale = SourceFacts(
        "bafkreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm", first.facts.files
    )
    previous = PreviousSnapshot(first.index_cid, first.index, stale)
    second = writer(tmp_path, "s2").write(sources(root), previous)
    assert (second.stats.files_read, second.stats.chunks_new) == (5, 0)
    assert second.index_cid == first.index_cid


def test_without_a_previous_snapshot_every_chunk_is_new(tmp_path: Path) -> None:
    root = volume(tmp_path)
    make_tree(root)
    capture(tmp_path, root)
    again = capture(tmp_path, root, None, "s2")
    assert again.stats.chunks_known == 0 and again.stats.files_reused == 0
    assert again.pack_paths


def test_known_chunks_from_other_indexes_are_not_stored_again(tmp_path: Path) -> None:
    root = volume(tmp_path)
    make_tree(root)
    first = capture(tmp_path, root)
    again = writer(tmp_path, "s2").write(sources(root), None, known_chunks([first.index]))
    assert again.stats.files_read == 5 and again.pack_paths == ()
    assert again.index_cid == first.index_cid


def test_duplicate_content_within_one_snapshot_is_stored_once(tmp_path: Path) -> None:
    root = volume(tmp_path)
    data = random_bytes(2 * MiB)
    for name in ("a", "b", "c"):
        (root / name).write_bytes(data)
    staged = capture(tmp_path, root)
    assert staged.stats.bytes_new == 2 * MiB
    assert staged.stats.stored_bytes_new < 2 * MiB + 100
    chunk_lists = [e.chunks for e in staged.index.files()]
    assert chunk_lists[0] == chunk_lists[1] == chunk_lists[2]


def test_bytes_inserted_into_a_big_file_store_only_the_nearby_chunks(tmp_path: Path) -> None:
    root = volume(tmp_path)
    data = random_bytes(48 * MiB, seed=21)
    (root / "big").write_bytes(data)
    first = capture(tmp_path, root)
    (root / "big").write_bytes(data[: 30 * MiB] + b"+" * 1000 + data[30 * MiB :])
    second = capture(tmp_path, root, first, "s2")
    assert second.stats.bytes_read == 48 * MiB + 1000
    assert second.stats.chunks_new <= 2
    assert second.stats.bytes_new <= 2 * K.CHUNK_MAX_BYTES
    assert second.stats.bytes_new < 0.2 * len(data)


def test_small_files_share_packs(tmp_path: Path) -> None:
    root = volume(tmp_path)
    for n in range(300):
        (root / f"s{n:03d}").write_bytes(random_bytes(1000 + n, seed=n))
    staged = capture(tmp_path, root)
    assert len(staged.pack_paths) == 1
    offsets = [e.chunks[0].offset for e in staged.index.files()]
    assert offsets == sorted(offsets)  # written in walk order, back to back


@pytest.mark.parametrize("kind", ["symlink", "fifo", "socket", "hardlink"])
def test_links_and_special_files_fail_the_capture_and_leave_no_packs(
    tmp_path: Path, kind: str
) -> None:
    root = volume(tmp_path)
    (root / "a.bin").write_bytes(random_bytes(MiB))
    odd = root / "zz"
    if kind == "symlink":
        odd.symlink_to("a.bin")
    elif kind == "fifo":
        os.mkfifo(odd)
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(odd))
        sock.close()
    else:
        os.link(root / "a.bin", odd)
    with pytest.raises(SyncError) as info:
        capture(tmp_path, root)
    assert info.value.stage == C.STAGE_ARCHIVE_BUILD
    assert "/app/data/" in str(info.value) and str(tmp_path) not in str(info.value)
    assert list((tmp_path / "s1" / "packs").iterdir()) == []
    assert not (tmp_path / "s1" / "index").exists()


def test_nested_sources_are_walked_once(tmp_path: Path) -> None:
    root = volume(tmp_path)
    (root / "sub").mkdir()
    (root / "sub" / "f").write_bytes(b"data")
    (whole,) = sources(root)
    inner = ResolvedPath("/app/data/sub", root / "sub", whole.binding)
    srcs = [inner, whole]
    staged = writer(tmp_path).write(srcs)
    assert [e.path for e in staged.index.entries] == ["app/data", "app/data/sub", "app/data/sub/f"]
    assert staged.index.roots == ("app/data",)


@pytest.mark.parametrize("size", [1000, 20 * MiB])
def test_a_file_that_grows_while_read_fails_the_capture(
    tmp_path: Path, mocker: MockerFixture, size: int
) -> None:
    root = volume(tmp_path)
    (root / "grows").write_bytes(random_bytes(size))
    real_fstat = os.fstat

    def smaller(fd: int) -> os.stat_result:  # as if the file grew after fstat
        st = real_fstat(fd)
        fields = list(st[:10])
        fields[6] = st.st_size - 1
        return os.stat_result(fields)

    mocker.patch("container_apps.sync.chunks.writer.os.fstat", side_effect=smaller)
    with pytest.raises(SyncError) as info:
        capture(tmp_path, root)
    assert "'/app/data/grows' changed while it was read" in str(info.value)
    assert list((tmp_path / "s1" / "packs").iterdir()) == []


def test_a_previous_index_with_other_chunk_ids_is_not_reused(tmp_path: Path) -> None:
    root = volume(tmp_path)
    make_tree(root)
    first = capture(tmp_path, root)
    other = replace(first.index, chunk_hash="hmac-sha256")
    previous = PreviousSnapshot(first.index_cid, other, first.facts)
    second = writer(tmp_path, "s2").write(sources(root), previous)
    assert (second.stats.files_reused, second.stats.chunks_known) == (0, 0)
    assert second.pack_paths
