"""RetryingRegistry: any Registry with the transient-error retry policy applied.

Backends classify, this wrapper retries (G3). ``hset`` of the same value is idempotent,
so a retry after a lost reply only rewrites what is there. ``open_registry`` returns
registries already wrapped.
"""

from __future__ import annotations

from typing import ClassVar

from ..retry_policy import RetryPolicy
from .base import Registry
from .lease import LeaseHolder, LeaseResult


class RetryingRegistry:
    """Delegates to ``inner``, retrying ``RegistryUnavailable`` per ``policy``."""

    scheme: ClassVar[str] = "retrying"

    def __init__(self, inner: Registry, policy: RetryPolicy | None = None) -> None:
        self.inner = inner
        self.policy = policy or RetryPolicy()

    def hset(self, hkey: str, key: str, value: str) -> bool:
        """``inner.hset`` with retries (see ``Registry.hset``)."""
        return self.policy.call(
            lambda: self.inner.hset(hkey, key, value),
            what=f"hset {hkey}/{key} on {self.describe()}",
        )

    def hget(self, hkey: str, key: str) -> str | None:
        """``inner.hget`` with retries (see ``Registry.hget``)."""
        return self.policy.call(
            lambda: self.inner.hget(hkey, key), what=f"hget {hkey}/{key} on {self.describe()}"
        )

    def acquire_lease(
        self, hkey: str, key: str, holder: LeaseHolder, ttl_s: float, takeover: bool = False
    ) -> LeaseResult:
        """``inner.acquire_lease`` with retries: a retry by the same holder only renews."""
        return self.policy.call(
            lambda: self.inner.acquire_lease(hkey, key, holder, ttl_s, takeover),
            what=f"lease {hkey}/{key} on {self.describe()}",
        )

    def hsync(self, hkey: str) -> None:
        """``inner.hsync`` with retries (see ``Registry.hsync``)."""
        self.policy.call(lambda: self.inner.hsync(hkey), what=f"hsync {hkey} on {self.describe()}")

    def check(self) -> None:
        """``inner.check`` once, without retries: its caller re-checks with its own backoff."""
        self.inner.check()

    def describe(self) -> str:
        """The inner registry's redacted URL."""
        return self.inner.describe()
