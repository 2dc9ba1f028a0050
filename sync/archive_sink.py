"""HashingSink: where a compressed archive goes while it is built (docs/FORMAT.md,
"Snapshot archive").

It counts and checks the size limit at once, and hashes and writes on a writer thread,
so the archive's SHA-256 is known the moment the last byte is written, without a second
pass and without blocking the compressor on disk I/O.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from typing import Any, BinaryIO

from ..errors import SyncError
from . import constants as C
from .paths import ResolvedPath
from .preflight import RESERVED_PREFIX

_WRITE_QUEUE_CHUNKS = 8  # compressed chunks (<= ~1 MiB each) waiting for the writer thread


def archive_build_error(message: str) -> SyncError:
    """A build failure, stage ``archive_build``; ``message`` names container paths only."""
    return SyncError(message, stage=C.STAGE_ARCHIVE_BUILD)


class HashingSink:
    """The compressed sink: counts at once, hashes and writes on a writer thread.

    The compressors hand over fresh ``bytes`` of up to ~1 MiB; ``sha256.update`` and the
    file write release the GIL for chunks that size, so the writer thread overlaps them
    with reading and compressing on the caller's thread (bench/run.py: about 10-25 %
    faster than hashing and writing inline). The queue is bounded, so memory stays flat.
    The size limit is checked in ``write`` itself; a write error of the thread is raised
    by the next ``write`` or by ``flush``.
    """

    def __init__(self, handle: BinaryIO, max_bytes: int | None) -> None:
        self._handle = handle
        self._hash = hashlib.sha256()
        self._max = max_bytes
        self.size = 0
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_WRITE_QUEUE_CHUNKS)
        self._error: BaseException | None = None
        self._discard = False  # aborted: queued chunks are dropped, not written
        self._thread = threading.Thread(target=self._drain, name="archive-writer", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while True:
            chunk = self._queue.get()
            try:
                if chunk is None:
                    return
                if self._error is None and not self._discard:
                    self._hash.update(chunk)
                    self._handle.write(chunk)
            except BaseException as exc:  # handed to the caller's thread
                self._error = exc
            finally:
                self._queue.task_done()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def write(self, data: Any) -> int:
        self._raise_error()
        chunk = data if type(data) is bytes else bytes(data)  # never queue a reused buffer
        self.size += len(chunk)
        if self._max is not None and self.size > self._max:
            raise archive_build_error(f"archive exceeds SYNC.MAX_ARCHIVE_BYTES ({self._max} bytes)")
        self._queue.put(chunk)
        return len(chunk)

    def flush(self) -> None:
        """Wait until every queued chunk is written; raise the writer's error, if any."""
        self._queue.join()
        self._raise_error()
        self._handle.flush()

    def close(self, *, discard: bool = False) -> None:
        """Stop the writer thread, writing what is queued unless ``discard``; idempotent."""
        self._discard = self._discard or discard
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def runner_entry(source: ResolvedPath, host: str, name: str) -> bool:
    """Whether ``name`` in directory ``host`` is the runner's own, never app data.

    At a volume root, ``.car-sync-*`` names are the consumer's (a commit's backup dir,
    the in-volume staging dir: docs/FORMAT.md, "Host-side layout"); a capture leaves
    them out, as a consumer would refuse them.
    """
    return (
        not source.relative and host == str(source.host_path) and name.startswith(RESERVED_PREFIX)
    )
