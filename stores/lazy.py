"""LazyStore: a BlobStore whose backend is set up by its first call, not at open.

Setting a backend up can fail for reasons an operator fixes while the runner runs (a
blob directory that cannot be created yet, a cache directory on a full disk). Opened
eagerly, such a failure at start switched volume-sync off until a restart; deferred,
it is an outage like any other: the call fails with the backend's own error, and the
next call tries to set it up again. ``open_store`` returns every store wrapped in one.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path
from typing import ClassVar

from ..backend_urls import redact_url
from ..errors import CarError
from .base import BlobStore, Progress


class LazyStore:
    """Sets up its backend with ``opener`` on first use; again after a failed set-up."""

    scheme: ClassVar[str] = "lazy"

    def __init__(self, opener: Callable[[], BlobStore], url: str) -> None:
        self._opener = opener
        self._shown = redact_url(url)
        self._inner: BlobStore | None = None

    def opened(self) -> BlobStore:
        """The backend, set up now if it is not yet.

        Raises:
            StoreError: the set-up failed (``StoreUnavailable`` if transient).
        """
        if self._inner is None:
            self._inner = self._opener()
        return self._inner

    def put(self, src: Path, *, progress: Progress | None = None) -> str:
        """See ``BlobStore.put``."""
        return self.opened().put(src, progress=progress)

    def get(
        self,
        cid: str,
        *,
        sha256: str | None = None,
        max_bytes: int | None = None,
        progress: Progress | None = None,
    ) -> Path:
        """See ``BlobStore.get``."""
        return self.opened().get(cid, sha256=sha256, max_bytes=max_bytes, progress=progress)

    def get_range(self, cid: str, offset: int, length: int) -> bytes:
        """See ``BlobStore.get_range``."""
        return self.opened().get_range(cid, offset, length)

    def delete(self, cid: str, *, remote: bool, local: bool) -> None:
        """See ``BlobStore.delete``."""
        self.opened().delete(cid, remote=remote, local=local)

    def check(self) -> None:
        """Set the backend up if needed, then ``BlobStore.check`` it."""
        self.opened().check()

    def sweep_local(self, *, keep: Collection[str] = ()) -> list[str]:
        """See ``BlobStore.sweep_local``; a backend that cannot be set up has nothing swept.

        Sweeping is start-up housekeeping and must never fail a start: an unreachable
        backend is the outage the start-time check reports, and the next start sweeps.
        """
        try:
            store = self.opened()
        except CarError:
            return []
        return store.sweep_local(keep=keep)

    def describe(self) -> str:
        """The redacted URL, without setting anything up."""
        return self._shown
