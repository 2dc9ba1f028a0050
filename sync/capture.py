"""SnapshotCapture: turns a request's paths into an archive file (README, "Provider").

Offline (the default): a confirmed stop, the archive built from the stopped volumes,
and the app started again **as soon as the archive is complete**, before any upload
(and also when the build failed). Online (provider opt-in): no stop; each path comes
from Docker's ``get_archive`` of the running container. The provider owns what happens
to the archive next (verify, upload, publish).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ..errors import CarError, RequestRejected, SyncError
from . import constants as C
from .archive import ArchiveInfo, ArchiveWriter, build_archive
from .container_control import ContainerControl
from .crypto.framing import Sealer
from .paths import PathResolver, ResolvedPath
from .records import SyncRequest

_log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ArchiveSettings:
    """How archives are written (from the provider's SYNC block)."""

    archive_format: str = C.ARCHIVE_FORMAT_ZST
    compression_level: int = C.DEFAULT_ZSTD_LEVEL
    max_archive_bytes: int | None = C.DEFAULT_MAX_ARCHIVE_BYTES


@dataclass(frozen=True, slots=True)
class Captured:
    """The archive written, how long it took, and how long the app was down for it."""

    info: ArchiveInfo
    seconds: float
    downtime: float


def sealed(info: ArchiveInfo, path: Path, sealer: Sealer | None) -> ArchiveInfo:
    """``info`` of the archive at ``path`` once sealed in place (unchanged without a
    sealer): digest and size are the stored bytes' (docs/FORMAT.md, "Encryption at rest").
    """
    if sealer is None:
        return info
    sha256, size = sealer.seal_in_place(path)
    return dataclasses.replace(info, sha256=sha256, size_bytes=size)


def remove_capture(path: Path) -> None:
    """Remove a capture's local output: an archive file, or a chunked staging directory."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        os.unlink(path)


class SnapshotCapture:
    """Builds one archive per request, stopping the app only as long as needed."""

    def __init__(
        self,
        settings: ArchiveSettings,
        containers: ContainerControl,
        resolver: PathResolver,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        log: logging.Logger = _log,
    ) -> None:
        self.settings = settings
        self.containers = containers
        self.resolver = resolver
        self._monotonic = monotonic
        self._log = log

    def capture(self, request: SyncRequest, dest: Path) -> Captured:
        """Write the archive of ``request`` to ``dest``.

        Raises:
            SyncError: stage ``runtime_stop`` (nothing captured, app left running) or
                ``archive_build`` (the app was started again); messages name container
                paths only.
        """
        started = self._monotonic()
        if request.provider_capture == C.CAPTURE_ONLINE:
            return Captured(self._build_online(request, dest), self._monotonic() - started, 0.0)
        info, downtime = self.stopped(lambda: self._build_offline(request, dest))
        return Captured(info, self._monotonic() - started, downtime)

    def stopped(self, build: Callable[[], T]) -> tuple[T, float]:
        """Run ``build`` with the app stopped; start it again as soon as ``build`` returns.

        Returns:
            (what ``build`` returned, the downtime in seconds).

        Raises:
            SyncError: stage ``runtime_stop`` (``build`` did not run, app left running),
                or whatever ``build`` raised (the app was started again).
        """
        stop_began = self._monotonic()
        self._stop()
        try:
            result = build()
        finally:
            self._restart()  # as soon as the capture is complete, before any upload
            downtime = self._monotonic() - stop_began
        return result, downtime

    def stopped_until_read(self, build: Callable[[Callable[[], None]], T]) -> tuple[T, float]:
        """``stopped``, but ``build`` may start the app itself, through the callable it is
        given, once it has read everything it needs; the downtime ends there.

        The snapshot stays the stopped app's: only work on what was already read (a
        chunked capture's pack hashes, its index) runs with the app up.

        Returns:
            (what ``build`` returned, the downtime in seconds).

        Raises:
            as ``stopped``.
        """
        stop_began = self._monotonic()
        self._stop()
        downtime: list[float] = []

        def release() -> None:
            if not downtime:
                self._restart()
                downtime.append(self._monotonic() - stop_began)

        try:
            result = build(release)
        finally:
            release()  # a no-op if build released already
        return result, downtime[0]

    def sources(self, request: SyncRequest) -> list[ResolvedPath]:
        """The request's paths resolved for reading, now (the app may have planted a link).

        Raises:
            SyncError: stage ``archive_build``; a path that no longer resolves safely.
        """
        try:
            return [self.resolver.resolve_for_read(p) for p in request.archive_paths]
        except RequestRejected as exc:
            raise SyncError(exc.message, stage=C.STAGE_ARCHIVE_BUILD) from exc

    def _stop(self) -> None:
        try:
            self.containers.stop_confirmed()
        except Exception as exc:
            self._log.error("confirmed stop failed: %s", exc)
            self._start_if_stopped()
            raise SyncError(
                "the app container could not be stopped; nothing was captured",
                stage=C.STAGE_RUNTIME_STOP,
            ) from exc

    def _build_offline(self, request: SyncRequest, dest: Path) -> ArchiveInfo:
        s = self.settings
        # Re-resolve now that the app is stopped: it may have planted a link since.
        sources = self.sources(request)
        try:
            return build_archive(
                sources,
                dest,
                fmt=s.archive_format,
                level=s.compression_level,
                max_bytes=s.max_archive_bytes,
            )
        except OSError as exc:
            self._log.error("writing the archive failed: %s", exc)
            raise SyncError(
                f"the archive could not be written ({exc.strerror})", stage=C.STAGE_ARCHIVE_BUILD
            ) from exc

    def _build_online(self, request: SyncRequest, dest: Path) -> ArchiveInfo:
        s = self.settings
        with ArchiveWriter(
            dest,
            fmt=s.archive_format,
            level=s.compression_level,
            max_bytes=s.max_archive_bytes,
        ) as writer:
            for path in request.archive_paths:
                writer.add_stream(self._docker_archive(path), path)
            return writer.finish()

    def _docker_archive(self, path: str) -> Iterator[bytes]:
        try:
            return self.containers.get_archive(path)
        except CarError as exc:
            self._log.error("get_archive(%s) failed: %s", path, exc)
            raise SyncError(
                f"path {path!r} could not be read from the running container",
                stage=C.STAGE_ARCHIVE_BUILD,
            ) from exc

    def _restart(self) -> None:
        try:
            self.containers.start()
        except Exception:
            # The data is captured; the runner loop starts the app again (its held start
            # after a sync stop), with the volumes still mounted.
            self._log.exception("restarting the app container after capture failed")

    def _start_if_stopped(self) -> None:
        with contextlib.suppress(Exception):
            if not self.containers.is_running():
                self._restart()
