"""The app container's output on the host: one file per container run in ``logs/``.

Why a follower thread instead of reading the log at the stop: Docker serves a container's
log slowly (the daemon decodes its json-file log, a few MB/s for short lines: ~300 MB
took ~27 s) and the log goes with the container, so reading it all at the stop put that
time inside every sync stop's downtime (the container must be removed before the volumes
are touched), and reading it as one ``bytes`` object put all of it in memory. Instead
each container this runner starts gets a ``LogFollower`` at once: it streams the output
(``follow``) chunk by chunk into ``.<stamp>.log.<random>.tmp`` in ``logs/`` while the app
runs, so memory does not grow with the log. When the container stops, Docker ends the
stream and the file is fsynced and renamed to ``<stamp>.log`` (``fsutil.atomic_file``;
``<stamp>`` is the UTC time the container started). A stop then waits only for what
the follower has not read yet, normally nothing.

A container this runner did not start (the leftover of a crashed run) has no follower;
its output is saved by one streamed read before it is removed (``save``). Temp files a
crashed run left are removed at start (``sweep``): one runner owns an instance's
``logs/``, so at start nothing else writes there.

``LogRetention`` keeps the folder bounded: after each saved file the oldest ``*.log``
files go first until at most ``keep_files`` files and ``keep_bytes`` bytes remain; the
newest file is always kept, even when it alone is larger.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..fsutil import atomic_file

DEFAULT_KEEP_FILES = 20
DEFAULT_KEEP_BYTES = 256 * 1024 * 1024
# Names this module writes; retention and the sweep touch nothing else in logs/.
_LOG_NAME = re.compile(r"^\d{8}T\d{6}\.\d{6}Z(\.\d+)?\.log$")
_TEMP_GLOB = ".*.log.*.tmp"


@dataclass(frozen=True, slots=True)
class LogRetention:
    """How many saved log files, and how many bytes of them, ``logs/`` keeps."""

    keep_files: int = DEFAULT_KEEP_FILES
    keep_bytes: int = DEFAULT_KEEP_BYTES

    def prune(self, directory: Path, log: logging.Logger) -> list[Path]:
        """Delete the oldest saved logs beyond the limits; return what was deleted.

        Only files named like the ones this module writes count; the newest is kept.
        """
        files = sorted(p for p in directory.iterdir() if _LOG_NAME.match(p.name))
        sizes = {p: _size(p) for p in files}
        total = sum(sizes.values())
        deleted: list[Path] = []
        for path in files[:-1]:  # oldest first (names are UTC stamps), never the newest
            if len(files) - len(deleted) <= self.keep_files and total <= self.keep_bytes:
                break
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("could not remove old log %s: %s", path.name, exc)
                continue
            total -= sizes[path]
            deleted.append(path)
        return deleted


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


class LogFollower:
    """Streams one container run's output into one file, on its own thread."""

    def __init__(self, chunks: Iterator[bytes], path: Path, owner: ContainerLogs) -> None:
        self.path = path
        self._chunks = chunks
        self._owner = owner
        self._thread = threading.Thread(target=self._run, name=f"car-logs-{path.stem}", daemon=True)

    def start(self) -> LogFollower:
        self._thread.start()
        return self

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the stream to end; True once the file is saved."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        self._owner.write(self.path, self._chunks)


class ContainerLogs:
    """The ``logs/`` folder of one instance: followers, one-shot saves, sweep, retention."""

    def __init__(self, directory: Path, retention: LogRetention, log: logging.Logger) -> None:
        self.directory = directory
        self.retention = retention
        self._log = log
        self._prune_lock = threading.Lock()  # followers may finish at the same time

    def follow(self, chunks: Iterator[bytes]) -> LogFollower:
        """Start saving a running container's output; ``chunks`` ends when it stops."""
        return LogFollower(chunks, self._new_path(), self).start()

    def save(self, chunks: Iterator[bytes]) -> Path | None:
        """Save a container's whole output now (streamed); None if nothing was saved."""
        path = self._new_path()
        return path if self.write(path, chunks) else None

    def sweep(self) -> None:
        """Remove temp files a crashed run of this instance left in ``logs/``."""
        if not self.directory.is_dir():
            return
        for path in self.directory.glob(_TEMP_GLOB):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                self._log.info("removed %s left by an interrupted log save", path.name)

    def write(self, path: Path, chunks: Iterator[bytes]) -> bool:
        """Stream ``chunks`` into ``path`` atomically, then apply retention; never raises.

        A stream that breaks after some output keeps what arrived (logged); one that
        fails before any output leaves no file.
        """
        written = 0
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with atomic_file(path) as out:
                try:
                    for chunk in chunks:
                        out.write(chunk)
                        out.flush()  # on disk as it comes, not held in a buffer
                        written += len(chunk)
                except Exception as exc:  # e.g. Docker went away mid-stream
                    if written == 0:
                        raise
                    self._log.warning("log stream to %s broke off: %s", path.name, exc)
        except Exception as exc:  # losing logs must never take the runner down
            self._log.warning("could not save container logs to %s: %s", path.name, exc)
            return False
        self._log.info("container logs saved to %s (%d bytes)", path, written)
        with self._prune_lock:
            for old in self.retention.prune(self.directory, self._log):
                self._log.info("removed old log %s (LOGS_KEEP_FILES/LOGS_KEEP_BYTES)", old.name)
        return True

    def _new_path(self) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self.directory / f"{stamp}.log"
        n = 1
        while path.exists():  # two saves in one microsecond: never overwrite
            path = self.directory / f"{stamp}.{n}.log"
            n += 1
        return path
