"""LazyRegistry: a Registry whose backend is set up by its first call, not at open.

Opening the SQLite registry takes a write lock and reads the file, so a garbage or
read-only ``registry.sqlite`` at start used to switch volume-sync off until a restart,
even after the file was repaired. Deferred, a failed set-up is an outage like any other:
the call fails with the backend's own error, and the next call tries again. (Redis
already connects on first use.) ``open_registry`` returns every registry wrapped in one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from ..backend_urls import redact_url
from .base import Registry
from .lease import LeaseHolder, LeaseResult


class LazyRegistry:
    """Sets up its backend with ``opener`` on first use; again after a failed set-up."""

    scheme: ClassVar[str] = "lazy"

    def __init__(self, opener: Callable[[], Registry], url: str) -> None:
        self._opener = opener
        self._shown = redact_url(url)
        self._inner: Registry | None = None

    def opened(self) -> Registry:
        """The backend, set up now if it is not yet.

        Raises:
            RegistryError: the set-up failed (``RegistryUnavailable`` if transient).
        """
        if self._inner is None:
            self._inner = self._opener()
        return self._inner

    def hset(self, hkey: str, key: str, value: str) -> bool:
        """See ``Registry.hset``."""
        return self.opened().hset(hkey, key, value)

    def hget(self, hkey: str, key: str) -> str | None:
        """See ``Registry.hget``."""
        return self.opened().hget(hkey, key)

    def acquire_lease(
        self, hkey: str, key: str, holder: LeaseHolder, ttl_s: float, takeover: bool = False
    ) -> LeaseResult:
        """See ``Registry.acquire_lease``."""
        return self.opened().acquire_lease(hkey, key, holder, ttl_s, takeover)

    def hsync(self, hkey: str) -> None:
        """See ``Registry.hsync``."""
        self.opened().hsync(hkey)

    def check(self) -> None:
        """Set the backend up if needed, then ``Registry.check`` it."""
        self.opened().check()

    def describe(self) -> str:
        """The redacted URL, without setting anything up."""
        return self._shown
