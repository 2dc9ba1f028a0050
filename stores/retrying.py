"""RetryingStore: any BlobStore with the transient-error retry policy applied.

Backends classify, this wrapper retries (G3, like restic's ``retry.Backend``). Every
store operation is idempotent (content-addressed put, verified get, no-op delete of a
missing id), so retrying a call that may have half-happened is safe. ``open_store``
returns stores already wrapped.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import ClassVar

from ..retry_policy import RetryPolicy
from .base import BlobStore, Progress


class RetryingStore:
    """Delegates to ``inner``, retrying ``StoreUnavailable`` per ``policy``."""

    scheme: ClassVar[str] = "retrying"

    def __init__(self, inner: BlobStore, policy: RetryPolicy | None = None) -> None:
        self.inner = inner
        self.policy = policy or RetryPolicy()

    def put(self, src: Path, *, progress: Progress | None = None) -> str:
        """``inner.put`` with retries (see ``BlobStore.put``)."""
        return self.policy.call(
            lambda: self.inner.put(src, progress=progress), what=f"put to {self.describe()}"
        )

    def get(
        self,
        cid: str,
        *,
        sha256: str | None = None,
        max_bytes: int | None = None,
        progress: Progress | None = None,
    ) -> Path:
        """``inner.get`` with retries (see ``BlobStore.get``)."""
        return self.policy.call(
            lambda: self.inner.get(cid, sha256=sha256, max_bytes=max_bytes, progress=progress),
            what=f"get {cid} from {self.describe()}",
        )

    def get_range(self, cid: str, offset: int, length: int) -> bytes:
        """``inner.get_range`` with retries (see ``BlobStore.get_range``)."""
        return self.policy.call(
            lambda: self.inner.get_range(cid, offset, length),
            what=f"get_range {cid} from {self.describe()}",
        )

    def delete(self, cid: str, *, remote: bool, local: bool) -> None:
        """``inner.delete`` with retries (see ``BlobStore.delete``)."""
        self.policy.call(
            lambda: self.inner.delete(cid, remote=remote, local=local),
            what=f"delete {cid} from {self.describe()}",
        )

    def check(self) -> None:
        """``inner.check`` once, without retries: its caller re-checks with its own backoff."""
        self.inner.check()

    def sweep_local(self, *, keep: Collection[str] = ()) -> list[str]:
        """``inner.sweep_local`` (local housekeeping: nothing transient to retry)."""
        return self.inner.sweep_local(keep=keep)

    def describe(self) -> str:
        """The inner store's redacted URL."""
        return self.inner.describe()
