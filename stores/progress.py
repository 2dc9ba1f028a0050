"""ProgressStore: shows bytes done/total for long uploads and downloads (README, "Backends").

A wrapper, like ``RetryingStore``, so no backend or sync step has to know about
terminals: on a terminal it draws a rich progress bar on stderr; otherwise it logs a line
at 25 %, 50 %, 75 % and at the end. Transfers under ``min_bytes`` stay quiet.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TransferSpeedColumn,
)

from .base import BlobStore
from .base import Progress as ProgressCallback

_log = logging.getLogger(__name__)
MIN_REPORTED_BYTES = 8 * 1024 * 1024


class _LogReporter:
    """Logs each quarter of a transfer once."""

    def __init__(self, label: str, log: logging.Logger) -> None:
        self.label = label
        self.log = log
        self.next_quarter = 1

    def __call__(self, done: int, total: int | None) -> None:
        if not total or total < MIN_REPORTED_BYTES:
            return
        while self.next_quarter <= 4 and done * 4 >= total * self.next_quarter:
            self.log.info("%s: %d/%d bytes (%d%%)", self.label, done, total, 25 * self.next_quarter)
            self.next_quarter += 1


@contextmanager
def _reporter(label: str, tty: bool, log: logging.Logger) -> Iterator[ProgressCallback]:
    if not tty:
        yield _LogReporter(label, log)
        return
    columns = (TextColumn(label), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, transient=True, refresh_per_second=4) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int | None) -> None:
            if total is None or total >= MIN_REPORTED_BYTES:
                bar.update(task, completed=done, total=total)

        yield update


class ProgressStore:
    """Wraps a BlobStore and reports transfer progress when the caller passes none."""

    scheme: ClassVar[str] = "progress"

    def __init__(
        self,
        inner: BlobStore,
        *,
        tty: Callable[[], bool] = sys.stderr.isatty,
        log: logging.Logger = _log,
    ) -> None:
        self.inner = inner
        self._tty = tty
        self._log = log

    def put(self, src: Path, *, progress: ProgressCallback | None = None) -> str:
        if progress is not None:
            return self.inner.put(src, progress=progress)
        with _reporter(f"upload {src.name}", self._tty(), self._log) as report:
            return self.inner.put(src, progress=report)

    def get(
        self,
        cid: str,
        *,
        sha256: str | None = None,
        max_bytes: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> Path:
        if progress is not None:
            return self.inner.get(cid, sha256=sha256, max_bytes=max_bytes, progress=progress)
        with _reporter(f"download {cid[:16]}", self._tty(), self._log) as report:
            return self.inner.get(cid, sha256=sha256, max_bytes=max_bytes, progress=report)

    def get_range(self, cid: str, offset: int, length: int) -> bytes:
        # Ranges are small (a few MiB at most); their callers report progress per file.
        return self.inner.get_range(cid, offset, length)

    def delete(self, cid: str, *, remote: bool, local: bool) -> None:
        self.inner.delete(cid, remote=remote, local=local)

    def check(self) -> None:
        self.inner.check()

    def sweep_local(self, *, keep: Collection[str] = ()) -> list[str]:
        return self.inner.sweep_local(keep=keep)

    def describe(self) -> str:
        return self.inner.describe()
