"""ProgressStore reports long transfers on a log (or a terminal bar) and passes through."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from container_apps.stores.memory import MemoryBlobStore
from container_apps.stores.progress import MIN_REPORTED_BYTES, ProgressStore


def _file(tmp_path: Path, size: int) -> Path:
    path = tmp_path / "blob"
    path.write_bytes(b"x" * size)
    return path


class _ChunkedStore(MemoryBlobStore):
    """Memory store that reports progress in four steps, like a streaming backend."""

    def put(self, src: Path, *, progress=None) -> str:  # type: ignore[no-untyped-def]
        size = src.stat().st_size
        for step in range(1, 5):
            if progress is not None:
                progress(size * step // 4, size)
        return super().put(src)


def test_long_upload_logs_each_quarter_once_off_terminal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = ProgressStore(_ChunkedStore(tmp_path / "cache"), tty=lambda: False)
    with caplog.at_level(logging.INFO, logger="container_apps.stores.progress"):
        cid = store.put(_file(tmp_path, MIN_REPORTED_BYTES))
    lines = [r.getMessage() for r in caplog.records]
    assert [line.rsplit("(", 1)[1] for line in lines] == ["25%)", "50%)", "75%)", "100%)"]
    assert store.get(cid).read_bytes() == b"x" * MIN_REPORTED_BYTES


def test_short_transfer_stays_quiet(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = ProgressStore(_ChunkedStore(tmp_path / "cache"), tty=lambda: False)
    with caplog.at_level(logging.INFO):
        store.put(_file(tmp_path, 1024))
    assert caplog.records == []


def test_callers_own_progress_callback_is_used_instead(tmp_path: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    store = ProgressStore(_ChunkedStore(tmp_path / "cache"), tty=lambda: False)
    store.put(_file(tmp_path, 100), progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (100, 100)


def test_terminal_bar_runs_without_error(tmp_path: Path) -> None:
    store = ProgressStore(_ChunkedStore(tmp_path / "cache"), tty=lambda: True)
    cid = store.put(_file(tmp_path, MIN_REPORTED_BYTES))
    store.delete(cid, remote=True, local=True)
    assert cid not in store.inner.cids()  # type: ignore[attr-defined]


def test_get_range_passes_through_quietly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = ProgressStore(_ChunkedStore(tmp_path / "cache"), tty=lambda: False)
    cid = store.inner.put(_file(tmp_path, MIN_REPORTED_BYTES))
    with caplog.at_level(logging.INFO):
        assert store.get_range(cid, 5, 3) == b"xxx"
    assert caplog.records == []
