"""Streaming tar archives: container-absolute names, digests and type rules.

The format is docs/FORMAT.md, "Snapshot archive".
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
import zstandard
from container_apps.errors import SyncError
from container_apps.sync import constants as C
from container_apps.sync.archive import ArchiveInfo, build_archive
from container_apps.sync.paths import PathResolver
from container_apps.tests.support.stream_archive import archive_from_stream
from container_apps.volumes.binding import VolumeBinding

MTIME = 1_700_000_000


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    root = tmp_path / "vol"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"alpha")
    (root / "sub" / "b.bin").write_bytes(os.urandom(3000))
    (root / "sub" / "deep" / "c").write_bytes(b"")
    os.chmod(root / "a.txt", 0o640)
    os.chmod(root / "sub" / "deep", 0o700)
    for p in [root / "a.txt", root / "sub" / "b.bin", root / "sub" / "deep" / "c"]:
        os.utime(p, (MTIME, MTIME))
    for p in [root / "sub" / "deep", root / "sub", root]:
        os.utime(p, (MTIME + 5, MTIME + 5))
    return root


@pytest.fixture
def resolver(volume: Path) -> PathResolver:
    return PathResolver([VolumeBinding("data", "fixed", volume, "/app/data")])


def open_archive(path: Path, fmt: str) -> tarfile.TarFile:
    if fmt == C.ARCHIVE_FORMAT_GZ:
        return tarfile.open(path, "r:gz")
    data = zstandard.ZstdDecompressor().decompressobj().decompress(path.read_bytes())
    return tarfile.open(fileobj=io.BytesIO(data), mode="r:")


def _build(resolver: PathResolver, dest: Path, *paths: str, fmt: str = "tar.zst", **kw: Any):
    sources = [resolver.resolve_for_read(p) for p in paths]
    level = 3 if fmt == C.ARCHIVE_FORMAT_ZST else 6
    return build_archive(sources, dest, fmt=fmt, level=level, **kw)


@pytest.mark.parametrize("fmt", ["tar.zst", "tar.gz"])
def test_member_names_are_container_paths_without_leading_slash(resolver, tmp_path, fmt) -> None:
    dest = tmp_path / f"out.{fmt}"
    _build(resolver, dest, "/app/data", fmt=fmt)
    with open_archive(dest, fmt) as tar:
        names = tar.getnames()
    assert names == [
        "app/data",
        "app/data/a.txt",
        "app/data/sub",
        "app/data/sub/b.bin",
        "app/data/sub/deep",
        "app/data/sub/deep/c",
    ]


@pytest.mark.parametrize("fmt", ["tar.zst", "tar.gz"])
def test_modes_mtimes_content_and_no_host_identity(resolver, volume, tmp_path, fmt) -> None:
    os.chown(volume / "a.txt", 1234, 5678)
    dest = tmp_path / f"out.{fmt}"
    _build(resolver, dest, "/app/data", fmt=fmt)
    with open_archive(dest, fmt) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert tar.extractfile("app/data/a.txt").read() == b"alpha"  # type: ignore[union-attr]
        b_bin = tar.extractfile("app/data/sub/b.bin").read()  # type: ignore[union-attr]
    assert b_bin == (volume / "sub" / "b.bin").read_bytes()
    assert members["app/data/a.txt"].mode == 0o640 and members["app/data/a.txt"].isfile()
    assert members["app/data/a.txt"].mtime == MTIME
    assert members["app/data/sub/deep"].isdir() and members["app/data/sub/deep"].mode == 0o700
    assert members["app/data/sub"].mtime == MTIME + 5
    for m in members.values():
        assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "", "")


def test_tar_gz_is_readable_by_python_tarfile_extractall(resolver, tmp_path) -> None:
    dest = tmp_path / "out.tar.gz"
    _build(resolver, dest, "/app/data", fmt="tar.gz")
    out = tmp_path / "x"
    with tarfile.open(dest, "r:gz") as tar:
        tar.extractall(out, filter="data")
    assert (out / "app" / "data" / "a.txt").read_bytes() == b"alpha"


def test_digest_size_members_and_unpacked_bytes(resolver, volume, tmp_path) -> None:
    dest = tmp_path / "out.tar.zst"
    info = _build(resolver, dest, "/app/data")
    data = dest.read_bytes()
    assert info == ArchiveInfo(
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        members=6,
        unpacked_bytes=5 + 3000 + 0,
    )


def test_same_content_gives_same_gzip_bytes(resolver, tmp_path) -> None:
    a = _build(resolver, tmp_path / "a.tar.gz", "/app/data", fmt="tar.gz")
    b = _build(resolver, tmp_path / "b.tar.gz", "/app/data", fmt="tar.gz")
    assert a.sha256 == b.sha256


def test_single_file_and_subdir_sources(resolver, tmp_path) -> None:
    dest = tmp_path / "o.tar.zst"
    info = _build(resolver, dest, "/app/data/a.txt", "/app/data/sub/deep")
    with open_archive(dest, "tar.zst") as tar:
        assert tar.getnames() == ["app/data/a.txt", "app/data/sub/deep", "app/data/sub/deep/c"]
    assert info.members == 3


def test_source_inside_another_source_is_not_duplicated(resolver, tmp_path) -> None:
    dest = tmp_path / "o.tar.zst"
    _build(resolver, dest, "/app/data/sub", "/app/data")
    with open_archive(dest, "tar.zst") as tar:
        names = tar.getnames()
    assert len(names) == len(set(names)) == 6


def test_nested_volume_source_is_read_from_its_own_volume(tmp_path, volume) -> None:
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "n.txt").write_text("nested")
    (volume / "mnt").mkdir()  # the mount point as the outer volume sees it
    (volume / "mnt" / "hidden").write_text("under the mount")
    r = PathResolver(
        [
            VolumeBinding("data", "fixed", volume, "/app/data"),
            VolumeBinding("inner", "fixed", inner, "/app/data/mnt"),
        ]
    )
    dest = tmp_path / "o.tar.zst"
    _build(r, dest, "/app/data", "/app/data/mnt")
    with open_archive(dest, "tar.zst") as tar:
        names = tar.getnames()
    assert "app/data/mnt/n.txt" in names and "app/data/mnt/hidden" not in names
    assert names.count("app/data/mnt") == 1


def test_symlink_in_source_fails_naming_container_path(resolver, volume, tmp_path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("TOP-SECRET")
    os.symlink(secret, volume / "sub" / "link")
    dest = tmp_path / "o.tar.zst"
    with pytest.raises(SyncError) as info:
        _build(resolver, dest, "/app/data")
    assert info.value.stage == "archive_build"
    assert "'/app/data/sub/link'" in str(info.value) and "symbolic link" in str(info.value)
    assert str(tmp_path) not in str(info.value) and "TOP-SECRET" not in str(info.value)
    assert list(tmp_path.glob("*o.tar.zst*")) == []  # partial output removed


def test_fifo_in_source_fails_without_blocking(resolver, volume, tmp_path) -> None:
    os.mkfifo(volume / "sub" / "pipe")
    with pytest.raises(SyncError) as info:
        _build(resolver, tmp_path / "o.tar.zst", "/app/data")
    assert info.value.stage == "archive_build" and "'/app/data/sub/pipe'" in str(info.value)


def test_hardlinked_file_fails_naming_container_path(resolver, volume, tmp_path) -> None:
    os.link(volume / "a.txt", volume / "sub" / "hard")
    with pytest.raises(SyncError) as info:
        _build(resolver, tmp_path / "o.tar.zst", "/app/data/sub")
    assert "'/app/data/sub/hard'" in str(info.value) and "hardlink" in str(info.value)
    assert list(tmp_path.glob("*o.tar.zst*")) == []


def test_archive_over_max_bytes_fails_and_leaves_nothing(resolver, volume, tmp_path) -> None:
    (volume / "big").write_bytes(os.urandom(200_000))
    with pytest.raises(SyncError) as info:
        _build(resolver, tmp_path / "o.tar.zst", "/app/data", max_bytes=50_000)
    assert "MAX_ARCHIVE_BYTES" in str(info.value)
    assert list(tmp_path.glob("*o.tar.zst*")) == []


def test_unknown_format_is_refused(resolver, tmp_path) -> None:
    with pytest.raises(SyncError):
        _build(resolver, tmp_path / "o.tar.xz", "/app/data", fmt="tar.xz")
    assert list(tmp_path.glob("*o.tar*")) == []


def test_progress_reports_unpacked_bytes(resolver, tmp_path) -> None:
    seen: list[int] = []
    _build(resolver, tmp_path / "o.tar.zst", "/app/data", progress=lambda d, t: seen.append(d))
    assert seen[-1] == 3005 and seen == sorted(seen)


# --- online capture (Docker get_archive stream) -----------------------------------------


def _docker_like_tar(entries: list[tuple[str, bytes | None, int]]) -> list[bytes]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data, kind in entries:
            info = tarfile.TarInfo(name)
            info.type = bytes([kind])
            info.uid, info.uname = 1000, "app"
            info.mtime = MTIME
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue()
    return [raw[i : i + 777] for i in range(0, len(raw), 777)]  # odd chunk size on purpose


def test_stream_members_are_re_rooted_to_the_container_path(tmp_path) -> None:
    chunks = _docker_like_tar(
        [("data", None, ord(tarfile.DIRTYPE)), ("data/f.txt", b"hello", ord(tarfile.REGTYPE))]
    )
    dest = tmp_path / "o.tar.gz"
    info = archive_from_stream(chunks, "/app/data", dest, fmt="tar.gz", level=6)
    with tarfile.open(dest, "r:gz") as tar:
        assert tar.getnames() == ["app/data", "app/data/f.txt"]
        assert tar.extractfile("app/data/f.txt").read() == b"hello"  # type: ignore[union-attr]
        assert all(m.uid == 0 and m.uname == "" for m in tar.getmembers())
    assert (info.members, info.unpacked_bytes) == (2, 5)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("data/l", ord(tarfile.SYMTYPE)),
        ("data/h", ord(tarfile.LNKTYPE)),
        ("data/p", ord(tarfile.FIFOTYPE)),
    ],
)
def test_stream_link_or_special_member_fails(tmp_path, name, kind) -> None:
    chunks = _docker_like_tar([("data", None, ord(tarfile.DIRTYPE)), (name, None, kind)])
    dest = tmp_path / "o.tar.zst"
    with pytest.raises(SyncError) as info:
        archive_from_stream(chunks, "/app/data", dest, fmt="tar.zst", level=3)
    assert info.value.stage == "archive_build"
    assert f"'/app/data/{name.split('/')[1]}'" in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["other/x", "data/../x"])
def test_stream_member_outside_the_path_fails(tmp_path, name) -> None:
    chunks = _docker_like_tar([(name, b"x", ord(tarfile.REGTYPE))])
    with pytest.raises(SyncError):
        archive_from_stream(chunks, "/app/data", tmp_path / "o.tar.zst", fmt="tar.zst", level=3)
    assert list(tmp_path.iterdir()) == []


def test_garbage_stream_fails_cleanly(tmp_path) -> None:
    with pytest.raises(SyncError):
        archive_from_stream(
            [b"not a tar" * 100], "/app/data", tmp_path / "o", fmt="tar.gz", level=1
        )
    assert list(tmp_path.iterdir()) == []


# --- memory stays flat ----------------------------------------------------------------------

_RSS_SCRIPT = textwrap.dedent(
    """
    import os, resource, sys
    from pathlib import Path
    from container_apps.sync.archive import build_archive
    from container_apps.sync.paths import PathResolver
    from container_apps.volumes.binding import VolumeBinding
    root, dest = Path(sys.argv[1]), Path(sys.argv[2])
    r = PathResolver([VolumeBinding("d", "fixed", root, "/data")])
    build_archive([r.resolve_for_read("/data")], dest, fmt="tar.zst", level=3)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """
)


def _make_data(root: Path, mib: int) -> None:
    root.mkdir()
    for i in range(mib // 4):
        with open(root / f"f{i:04d}", "wb") as f:
            for _ in range(4):
                f.write(os.urandom(1024 * 1024))  # incompressible: every byte is written out


def _peak_rss_kib(root: Path, dest: Path) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, str(root), str(dest)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return int(out.stdout.strip())


@pytest.mark.slow
def test_peak_rss_does_not_grow_with_data_size(tmp_path) -> None:
    _make_data(tmp_path / "small", 20)
    _make_data(tmp_path / "big", 200)
    small = _peak_rss_kib(tmp_path / "small", tmp_path / "small.tar.zst")
    big = _peak_rss_kib(tmp_path / "big", tmp_path / "big.tar.zst")
    assert (tmp_path / "big.tar.zst").stat().st_size > 200 * 1024 * 1024  # random data: real I/O
    assert big - small < 40 * 1024, f"peak RSS grew {small} KiB -> {big} KiB"


# --- a link planted by a real container ----------------------------------------------------


@pytest.mark.docker
def test_symlink_planted_in_real_container_is_refused_unread(container_factory, tmp_path) -> None:
    vol = tmp_path / "vol"
    vol.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-HOST-CONTENT")
    fifo = tmp_path / "trap.fifo"
    os.mkfifo(fifo)  # opening it for reading without O_NONBLOCK would hang the test
    script = f"ln -s {secret} /data/x && mkdir /data/d && ln -s {fifo} /data/d/f && sync"
    container = container_factory(["sh", "-c", script], volumes={str(vol): {"bind": "/data"}})
    assert container.wait(timeout=60)["StatusCode"] == 0
    assert os.path.islink(vol / "x") and os.path.islink(vol / "d" / "f")
    resolver = PathResolver([VolumeBinding("data", "fixed", vol, "/data")])
    errors: list[str] = []
    for path in ("/data/x", "/data/d/f"):
        with pytest.raises(Exception) as info:
            resolver.resolve_for_read(path)
        errors.append(str(info.value))
    result: list[BaseException] = []

    def build() -> None:
        try:
            build_archive(
                [resolver.resolve_for_read("/data")], tmp_path / "o.tar.zst", fmt="tar.zst", level=3
            )
        except BaseException as exc:
            result.append(exc)

    worker = threading.Thread(target=build, daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "build_archive followed the link into the FIFO"
    assert isinstance(result[0], SyncError) and result[0].stage == "archive_build"
    errors.append(str(result[0]))
    assert "'/data/d/f'" in errors[1] and "'/data/x'" in errors[0]
    for text in errors:
        assert "TOP-SECRET" not in text and str(tmp_path) not in text
    assert not (tmp_path / "o.tar.zst").exists()
