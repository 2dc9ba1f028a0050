"""app_logs: the ``logs/`` folder stays bounded, files appear whole, a follower never blocks."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from container_apps.errors import ContainerRuntimeError
from container_apps.runner.app_logs import ContainerLogs, LogRetention

LOG = logging.getLogger("test.app_logs")


def _saved(directory: Path, stamps: list[str], size: int) -> list[Path]:
    directory.mkdir(exist_ok=True)
    paths = []
    for stamp in stamps:
        path = directory / f"2026010{stamp}T000000.000000Z.log"
        path.write_bytes(b"x" * size)
        paths.append(path)
    return paths


def test_retention_by_count_removes_the_oldest_first(tmp_path: Path) -> None:
    paths = _saved(tmp_path, ["3", "1", "4", "2", "5"], size=10)
    deleted = LogRetention(keep_files=3, keep_bytes=10_000).prune(tmp_path, LOG)
    assert [p.name[:9] for p in deleted] == ["20260101T", "20260102T"]
    assert sorted(p.name[:9] for p in tmp_path.iterdir()) == ["20260103T", "20260104T", "20260105T"]
    assert len(paths) == 5


def test_retention_by_size_removes_the_oldest_first(tmp_path: Path) -> None:
    _saved(tmp_path, ["1", "2", "3", "4"], size=100)
    LogRetention(keep_files=10, keep_bytes=250).prune(tmp_path, LOG)
    assert sorted(p.name[:9] for p in tmp_path.iterdir()) == ["20260103T", "20260104T"]


def test_retention_keeps_the_newest_file_even_when_it_alone_is_too_big(tmp_path: Path) -> None:
    _saved(tmp_path, ["1", "2"], size=1000)
    LogRetention(keep_files=1, keep_bytes=10).prune(tmp_path, LOG)
    assert [p.name[:9] for p in tmp_path.iterdir()] == ["20260102T"]


def test_retention_touches_only_saved_logs(tmp_path: Path) -> None:
    _saved(tmp_path, ["1", "2"], size=10)
    others = [tmp_path / "notes.log", tmp_path / ".20260103T000000.000000Z.log.ab12.tmp"]
    for path in others:
        path.write_bytes(b"y" * 1000)
    LogRetention(keep_files=1, keep_bytes=1).prune(tmp_path, LOG)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*(p.name for p in others), "20260102T000000.000000Z.log"]
    )


def test_each_save_applies_retention(tmp_path: Path) -> None:
    logs = ContainerLogs(tmp_path / "logs", LogRetention(keep_files=2), LOG)
    for n in range(4):
        logs.save(iter([f"run {n}\n".encode()]))
    kept = sorted((tmp_path / "logs").iterdir())
    assert [p.read_text() for p in kept] == ["run 2\n", "run 3\n"]


def test_follower_file_appears_only_when_the_stream_ends(tmp_path: Path) -> None:
    more = threading.Event()

    def stream() -> Iterator[bytes]:
        yield b"first\n"
        more.wait(10)
        yield b"second\n"

    logs = ContainerLogs(tmp_path, LogRetention(), LOG)
    follower = logs.follow(stream())
    assert follower.wait(0.2) is False  # a slow stream never blocks the caller
    assert list(tmp_path.glob("*.log")) == []
    [temp] = tmp_path.glob(".*.log.*.tmp")  # what arrived so far is on disk, not in memory
    more.set()
    assert follower.wait(10)
    assert follower.path.read_bytes() == b"first\nsecond\n"
    assert not temp.exists()


def test_broken_stream_keeps_what_arrived(tmp_path: Path) -> None:
    def stream() -> Iterator[bytes]:
        yield b"partial\n"
        raise ContainerRuntimeError("read logs: connection reset")

    path = ContainerLogs(tmp_path, LogRetention(), LOG).save(stream())
    assert path is not None and path.read_bytes() == b"partial\n"


def test_stream_failing_before_any_output_leaves_no_file(tmp_path: Path) -> None:
    def stream() -> Iterator[bytes]:
        raise ContainerRuntimeError("read logs: not found")
        yield b""

    assert ContainerLogs(tmp_path, LogRetention(), LOG).save(stream()) is None
    assert os.listdir(tmp_path) == []


def test_sweep_removes_only_temp_logs(tmp_path: Path) -> None:
    keep = _saved(tmp_path, ["1"], size=3)
    (tmp_path / ".20260102T000000.000000Z.log.k3j4.tmp").write_bytes(b"half")
    ContainerLogs(tmp_path, LogRetention(), LOG).sweep()
    assert list(tmp_path.iterdir()) == keep
