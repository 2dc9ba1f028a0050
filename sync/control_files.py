"""The provider's side of ``/r1en_system/volume-sync/``: claim, answer, recover
(docs/FORMAT.md, "App-facing control files").

Everything in that directory is written by the app and therefore untrusted: the pending
``request.json`` may be a symlink, a FIFO, a directory or 10 GB of garbage. ``ControlDir``
turns it into either "nothing to do", a refused entry (already answered with failure
artifacts), or a ``ClaimedRequest`` holding at most 64 KiB + 1 bytes and their parse
result. It never follows a link, never blocks on a FIFO, and every file it writes goes
through ``fsutil`` (atomic, 0644, sorted keys).

The app may also swap the directory itself for a symlink, in a loop, to win a race
between a check and a use. So the directory is opened once (``O_DIRECTORY|O_NOFOLLOW``)
and every claim, read, write, rename and unlink names entries relative to that
descriptor; a request's answer goes to the directory it was claimed from, wherever the
app has moved it within its volume. Its parents are the runner's own host directories.

Answering never raises: what cannot be echoed is answered without the echo, and a
directory that cannot be written to at all (the app removed it) is logged.

The bytes, UTF-8 and JSON of a claimed body are ``request_body.py``'s; request
*semantics* (paths, runtime modes) live in ``request.py``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CarError, SyncError
from ..fsutil import atomic_write_bytes_at, dumps_json
from . import constants as C
from .request_body import ClaimedRequest, parse_body, read_limited

# ClaimedRequest and parse_body are what a claim returns and how; they live in
# request_body.py and are part of this module's interface.
__all__ = ["ClaimedRequest", "Clock", "ControlDir", "parse_body"]

Clock = Callable[[], float]
_log = logging.getLogger(__name__)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class _Echo:
    """What a failure answer repeats of the request."""

    request_body: Any = None
    archive_paths: list[str] = field(default_factory=list)
    request_id: str | None = None
    raw_body: str | None = None


class ControlDir:
    """The host side of ``/r1en_system/volume-sync`` for one provider instance.

    From ``claim`` to the answer (``fail`` or ``succeed``) the directory's descriptor is
    held, so the whole request is handled in the directory it was found in.
    """

    def __init__(
        self, directory: Path, node_id: str, clock: Clock = time.time, log: logging.Logger = _log
    ) -> None:
        self.directory = directory
        self.node_id = node_id
        self._clock = clock
        self._log = log
        self._held: int | None = None  # descriptor of the directory of the claimed request

    @property
    def pending(self) -> Path:
        return self.directory / C.REQUEST_FILE

    @property
    def processing(self) -> Path:
        return self.directory / C.PROCESSING_FILE

    # --- claim (docs/FORMAT.md, "request.json") ------------------------------------------
    def claim(self) -> ClaimedRequest | None:
        """Claim the pending request, if any.

        Returns:
            None when nothing is pending or the entry was refused (a symlink, FIFO,
            socket, device or directory; its failure artifacts are already written);
            otherwise the claimed bytes, now held as ``request.json.processing``.

        Raises:
            SyncError: the control directory itself is not a real directory.
        """
        self.release()
        self._held = self._open()
        claimed = None
        try:
            claimed = self._claim_in(self._held)
        except OSError as exc:  # e.g. the app made .processing a directory meanwhile
            raise SyncError(f"could not claim request.json: {exc.strerror}") from None
        finally:
            if claimed is None:
                self.release()
        return claimed

    def release(self) -> None:
        """Forget the claimed request's directory (done by ``fail``/``succeed``)."""
        if self._held is not None:
            os.close(self._held)
            self._held = None

    def _claim_in(self, fd: int) -> ClaimedRequest | None:
        try:
            st = os.stat(C.REQUEST_FILE, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(st.st_mode):
            self._refuse_entry(fd, C.REQUEST_FILE, st.st_mode)
            return None
        self._clear_stale_processing(fd)
        try:
            os.rename(C.REQUEST_FILE, C.PROCESSING_FILE, src_dir_fd=fd, dst_dir_fd=fd)
        except FileNotFoundError:
            return None  # the app removed it between stat and rename
        return self._read_processing(fd)

    def _read_processing(self, dir_fd: int) -> ClaimedRequest | None:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(C.PROCESSING_FILE, flags, dir_fd=dir_fd)
        except OSError as exc:
            # The app swapped in a link (ELOOP) or removed the file after our rename.
            self._discard(dir_fd, C.PROCESSING_FILE)
            if exc.errno == errno.ENOENT:
                return None
            self._answer_refused(dir_fd, "request.json was replaced while being claimed")
            return None
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                self._discard(dir_fd, C.PROCESSING_FILE)
                self._answer_refused(
                    dir_fd, f"request.json must be a regular file, found {_kind(mode)}"
                )
                return None
            raw = read_limited(fd, C.MAX_REQUEST_BYTES + 1)
        finally:
            os.close(fd)
        return parse_body(raw)

    def _refuse_entry(self, dir_fd: int, name: str, mode: int) -> None:
        """Remove (or move aside) a non-file in place of request.json, then answer it."""
        if stat.S_ISDIR(mode):
            self._move_aside_dir(dir_fd, name)
        else:
            # unlink never opens the entry: no link is followed, no FIFO blocks.
            self._discard(dir_fd, name)
        self._answer_refused(dir_fd, f"request.json must be a regular file, found {_kind(mode)}")

    def _move_aside_dir(self, dir_fd: int, name: str) -> None:
        try:
            os.rmdir(name, dir_fd=dir_fd)
        except OSError:
            aside = f"{C.UNSAFE_PREFIX}{time.time_ns()}"
            os.rename(name, aside, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            self._log.warning("moved a non-empty directory %s aside to %s", name, aside)

    def _answer_refused(self, dir_fd: int, error: str) -> None:
        self._answer_failure(dir_fd, C.STAGE_VALIDATION, error, _Echo())

    def _clear_stale_processing(self, dir_fd: int) -> None:
        """A pending request wins over a stale .processing."""
        try:
            st = os.stat(C.PROCESSING_FILE, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            self._move_aside_dir(dir_fd, C.PROCESSING_FILE)
        else:
            self._discard(dir_fd, C.PROCESSING_FILE)

    # --- answers (docs/FORMAT.md, "response.json") ---------------------------------------
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

        ``error`` must already be app-safe: container paths only, no host paths. Never
        raises: a directory that cannot be written to is logged, and ``.processing``
        then stays for the recovery at the next start.
        """
        echo = _Echo(request_body, list(archive_paths), request_id, raw_body)
        try:
            with self._dir() as fd:
                self._answer_failure(fd, stage, error, echo)
        except (OSError, CarError) as exc:
            self._log.warning("could not answer the volume-sync request (%s): %s", stage, exc)
        finally:
            self.release()

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

    def _answer_failure(self, dir_fd: int, stage: str, error: str, echo: _Echo) -> None:
        now = self._clock()
        detail: dict[str, Any] = {
            "stage": stage,
            "error": error,
            "failed_timestamp": now,
            "node_id": self.node_id,
        }
        if echo.raw_body is not None:
            detail["raw_body"] = echo.raw_body[: C.RAW_BODY_PREVIEW_CHARS]
        bare: dict[str, Any] = {"status": "error", "stage": stage, "error": error}
        bare.update(failed_timestamp=now, archive_paths=[])
        response = {**bare, "archive_paths": echo.archive_paths}
        if echo.request_id is not None:
            response["request_id"] = echo.request_id
        invalid = {"request": echo.request_body, "_error": detail}
        self._write(dir_fd, C.INVALID_FILE, invalid, {"request": None, "_error": detail})
        self._write(dir_fd, C.RESPONSE_FILE, response, bare)
        self._discard(dir_fd, C.PROCESSING_FILE)

    def succeed(self, payload: dict[str, Any]) -> None:
        """Write the ``ok`` response, remove a stale ``.invalid`` and drop ``.processing``."""
        try:
            with self._dir() as fd:
                answer = {**payload, "status": "ok"}
                bare: dict[str, Any] = {
                    k: answer[k] for k in ("status", "cid", "version") if k in answer
                }
                self._write(fd, C.RESPONSE_FILE, answer, bare)
                self._discard(fd, C.INVALID_FILE)
                self._discard(fd, C.PROCESSING_FILE)
        except (OSError, CarError) as exc:
            self._log.warning("could not write the ok answer of the volume-sync request: %s", exc)
        finally:
            self.release()

    def in_progress(self, **fields: Any) -> None:
        """Tell the app its request is being worked on (best effort)."""
        try:
            with self._dir() as fd:
                answer = {**fields, "status": "in_progress"}
                self._write(fd, C.RESPONSE_FILE, answer, {"status": "in_progress"})
        except (OSError, CarError) as exc:
            self._log.warning("could not write the in_progress answer: %s", exc)

    # --- recovery (docs/FORMAT.md, "request.json") ---------------------------------------
    def recover_stale_processing(self) -> None:
        """At start: give an orphan ``.processing`` back as ``request.json`` to redo it.

        If a pending request also exists it wins (the stale one is discarded at the next
        claim); a symlinked or non-regular ``.processing`` is removed unread.

        Raises:
            SyncError: the control directory itself is not a real directory.
        """
        fd = self._open()
        try:
            try:
                st = os.stat(C.PROCESSING_FILE, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                return
            if not stat.S_ISREG(st.st_mode):
                self._clear_stale_processing(fd)
                return
            if _exists(fd, C.REQUEST_FILE):
                return
            os.rename(C.PROCESSING_FILE, C.REQUEST_FILE, src_dir_fd=fd, dst_dir_fd=fd)
            self._log.info("re-queued an unfinished request (request.json.processing)")
        except OSError as exc:  # the app changed the entries meanwhile; its next claim sorts it
            self._log.warning("could not re-queue request.json.processing: %s", exc)
        finally:
            os.close(fd)

    # --- helpers ---------------------------------------------------------------------------
    def _open(self) -> int:
        try:
            return os.open(self.directory, _DIR_FLAGS)
        except FileNotFoundError:
            raise SyncError("volume-sync control directory is missing") from None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise SyncError("volume-sync control directory is not a real directory") from None
            raise

    @contextlib.contextmanager
    def _dir(self) -> Iterator[int]:
        """The claimed request's directory, else the directory opened for this call."""
        if self._held is not None:
            yield self._held
            return
        fd = self._open()
        try:
            yield fd
        finally:
            os.close(fd)

    def _write(self, dir_fd: int, name: str, obj: dict[str, Any], fallback: dict[str, Any]) -> None:
        """Atomically write ``obj``; if it has no JSON form, ``fallback`` (no echo) instead."""
        try:
            text = dumps_json(obj)
        except (TypeError, ValueError, RecursionError):
            self._log.exception("could not serialise %s; answering without the echo", name)
            text = dumps_json(fallback)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                # An app-made directory would make the rename fail forever.
                aside = f"{name}.unsafe.{time.time_ns()}"
                os.rename(name, aside, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        atomic_write_bytes_at(dir_fd, name, text.encode("utf-8"), mode=C.CONTROL_FILE_MODE)

    def _discard(self, dir_fd: int, name: str) -> None:
        try:
            os.unlink(name, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        except IsADirectoryError:  # unlink never removes a directory the app put there
            self._move_aside_dir(dir_fd, name)


def _exists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


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
