"""The provider's side of ``/r1en_system/volume-sync/``: claim, answer, recover (SPEC §5.2-§5.5).

Everything in that directory is written by the app and therefore untrusted: the pending
``request.json`` may be a symlink, a FIFO, a directory or 10 GB of garbage. ``ControlDir``
turns it into either "nothing to do", a refused entry (already answered with failure
artifacts), or a ``ClaimedRequest`` holding at most 64 KiB + 1 bytes and their parse
result. It never follows a link, never blocks on a FIFO, and every file it writes goes
through ``fsutil`` (atomic, 0644, sorted keys, refuses a symlinked directory).

Request *semantics* (paths, runtime modes) live in ``request.py``; this module only knows
bytes, UTF-8 and JSON.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SyncError
from ..fsutil import atomic_write_json
from . import constants as C

Clock = Callable[[], float]
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ClaimedRequest:
    """The bytes of a claimed request.json and what they parsed to.

    ``error`` is set when the body is oversize, not UTF-8 or not JSON; ``body`` is then
    None. A body that is JSON but not an object parses fine here (``request.py``
    rejects it), so its value is still echoed in ``request.json.invalid``.
    """

    raw: bytes
    text: str | None
    body: Any
    error: str | None = None

    @property
    def request_id(self) -> str | None:
        """The app's ``request_id`` when the body is an object with a string one."""
        if isinstance(self.body, dict):
            value = self.body.get("request_id")
            if isinstance(value, str):
                return value
        return None

    @property
    def archive_paths(self) -> list[str]:
        """The requested paths as given (strings only), for echoing in a failure answer."""
        if isinstance(self.body, dict):
            paths = self.body.get("archive_paths")
            if isinstance(paths, list):
                return [p for p in paths if isinstance(p, str)]
        return []

    @property
    def raw_body(self) -> str | None:
        """First 1024 chars, only for bodies that were valid UTF-8 but not JSON (SPEC §5.3)."""
        if self.error is not None and self.text is not None:
            return self.text[: C.RAW_BODY_PREVIEW_CHARS]
        return None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_body(raw: bytes) -> ClaimedRequest:
    """Size limit, strict UTF-8 and strict JSON (no NaN/Infinity) for a request body."""
    if len(raw) > C.MAX_REQUEST_BYTES:
        return ClaimedRequest(
            raw[:0], None, None, f"request body exceeds {C.MAX_REQUEST_BYTES} bytes"
        )
    try:
        text = raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        return ClaimedRequest(
            raw, None, None, f"request body is not valid UTF-8 (byte {exc.start})"
        )
    try:
        body = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        return ClaimedRequest(raw, text, None, "request body is not valid JSON: nested too deeply")
    except ValueError as exc:
        return ClaimedRequest(raw, text, None, f"request body is not valid JSON: {exc}")
    return ClaimedRequest(raw, text, body)


class ControlDir:
    """The host side of ``/r1en_system/volume-sync`` for one provider instance."""

    def __init__(
        self, directory: Path, node_id: str, clock: Clock = time.time, log: logging.Logger = _log
    ) -> None:
        self.directory = directory
        self.node_id = node_id
        self._clock = clock
        self._log = log

    @property
    def pending(self) -> Path:
        return self.directory / C.REQUEST_FILE

    @property
    def processing(self) -> Path:
        return self.directory / C.PROCESSING_FILE

    # --- claim (SPEC §5.2) ----------------------------------------------------------------
    def claim(self) -> ClaimedRequest | None:
        """Claim the pending request, if any.

        Returns:
            None when nothing is pending or the entry was refused (a symlink, FIFO,
            socket, device or directory; its failure artifacts are already written);
            otherwise the claimed bytes, now held as ``request.json.processing``.

        Raises:
            SyncError: the control directory itself is not a real directory.
        """
        self._require_real_dir()
        try:
            st = os.lstat(self.pending)
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(st.st_mode):
            self._refuse_entry(self.pending, st.st_mode)
            return None
        self._clear_stale_processing()
        try:
            os.rename(self.pending, self.processing)
        except FileNotFoundError:
            return None  # the app removed it between lstat and rename
        return self._read_processing()

    def _read_processing(self) -> ClaimedRequest | None:
        try:
            fd = os.open(self.processing, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            # The app swapped in a link (ELOOP) or removed the file after our rename.
            self._discard(self.processing)
            if exc.errno == errno.ENOENT:
                return None
            self._answer_refused("request.json was replaced while being claimed")
            return None
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                self._discard(self.processing)
                self._answer_refused(f"request.json must be a regular file, found {_kind(mode)}")
                return None
            raw = _read_limited(fd, C.MAX_REQUEST_BYTES + 1)
        finally:
            os.close(fd)
        return parse_body(raw)

    def _refuse_entry(self, path: Path, mode: int) -> None:
        """Remove (or move aside) a non-file in place of request.json, then answer it."""
        if stat.S_ISDIR(mode):
            self._move_aside_dir(path)
        else:
            # unlink never opens the entry: no link is followed, no FIFO blocks.
            self._discard(path)
        self._answer_refused(f"request.json must be a regular file, found {_kind(mode)}")

    def _move_aside_dir(self, path: Path) -> None:
        try:
            os.rmdir(path)
        except OSError:
            aside = self.directory / f"{C.UNSAFE_PREFIX}{time.time_ns()}"
            os.rename(path, aside)
            self._log.warning("moved a non-empty directory request.json aside to %s", aside.name)

    def _answer_refused(self, error: str) -> None:
        self.fail(C.STAGE_VALIDATION, error)

    def _clear_stale_processing(self) -> None:
        """A pending request wins over a stale .processing (SPEC §5.5)."""
        try:
            st = os.lstat(self.processing)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            self._move_aside_dir(self.processing)
        else:
            self._discard(self.processing)

    # --- answers (SPEC §5.3, §5.4) ----------------------------------------------------------
    def fail(
        self,
        stage: str,
        error: str,
        *,
        request_body: Any = None,
        archive_paths: Sequence[str] = (),
        request_id: str | None = None,
        raw_body: str | None = None,
    ) -> None:
        """Write ``request.json.invalid`` and an error ``response.json``; drop ``.processing``.

        ``error`` must already be app-safe: container paths only, no host paths.
        """
        now = self._clock()
        detail: dict[str, Any] = {
            "stage": stage,
            "error": error,
            "failed_timestamp": now,
            "node_id": self.node_id,
        }
        if raw_body is not None:
            detail["raw_body"] = raw_body[: C.RAW_BODY_PREVIEW_CHARS]
        self._write(C.INVALID_FILE, {"request": request_body, "_error": detail})
        response: dict[str, Any] = {
            "status": "error",
            "stage": stage,
            "error": error,
            "failed_timestamp": now,
            "archive_paths": list(archive_paths),
        }
        if request_id is not None:
            response["request_id"] = request_id
        self._write(C.RESPONSE_FILE, response)
        self._discard(self.processing)

    def fail_claimed(self, claimed: ClaimedRequest, stage: str, error: str) -> None:
        """``fail`` with the request body, paths, id and raw preview taken from ``claimed``."""
        self.fail(
            stage,
            error,
            request_body=claimed.body,
            archive_paths=claimed.archive_paths,
            request_id=claimed.request_id,
            raw_body=claimed.raw_body,
        )

    def succeed(self, payload: dict[str, Any]) -> None:
        """Write the ``ok`` response, remove a stale ``.invalid`` and drop ``.processing``."""
        self._write(C.RESPONSE_FILE, {**payload, "status": "ok"})
        self._discard(self.directory / C.INVALID_FILE)
        self._discard(self.processing)

    def in_progress(self, **fields: Any) -> None:
        """Tell the app its request is being worked on."""
        self._write(C.RESPONSE_FILE, {**fields, "status": "in_progress"})

    # --- recovery (SPEC §5.5) ---------------------------------------------------------------
    def recover_stale_processing(self) -> None:
        """At start: give an orphan ``.processing`` back as ``request.json`` to redo it.

        If a pending request also exists it wins (the stale one is discarded at the next
        claim); a symlinked or non-regular ``.processing`` is removed unread.

        Raises:
            SyncError: the control directory itself is not a real directory.
        """
        self._require_real_dir()
        try:
            st = os.lstat(self.processing)
        except FileNotFoundError:
            return
        if not stat.S_ISREG(st.st_mode):
            self._clear_stale_processing()
            return
        if os.path.lexists(self.pending):
            return
        os.rename(self.processing, self.pending)
        self._log.info("re-queued an unfinished request (request.json.processing)")

    # --- helpers ---------------------------------------------------------------------------
    def _require_real_dir(self) -> None:
        try:
            st = os.lstat(self.directory)
        except FileNotFoundError:
            raise SyncError("volume-sync control directory is missing") from None
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
            raise SyncError("volume-sync control directory is not a real directory")

    def _write(self, name: str, obj: dict[str, Any]) -> None:
        target = self.directory / name
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISDIR(os.lstat(target).st_mode):
                # An app-made directory would make os.replace fail forever.
                os.rename(target, self.directory / f"{name}.unsafe.{time.time_ns()}")
        atomic_write_json(target, obj, mode=C.CONTROL_FILE_MODE)

    @staticmethod
    def _discard(path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _read_limited(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = os.read(fd, min(remaining, 65536))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _kind(mode: int) -> str:
    kinds = (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    )
    return next((name for check, name in kinds if check(mode)), "a special file")
