"""MemoryRegistry: a real, in-process Registry for fast orchestration tests.

Passes the registry contract suite. Several runners in one test can share one instance.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from .base import Registry
from .lease import Lease, LeaseHolder, LeaseResult, check_ttl, decide


class MemoryRegistry:
    """A dict of dicts behind a lock; every hset is acknowledged."""

    scheme: ClassVar[str] = "memory"

    def __init__(self, *, wall_clock: Callable[[], float] = time.time) -> None:
        self._data: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()
        self._wall = wall_clock  # lease expiry; tests move it instead of sleeping

    def hset(self, hkey: str, key: str, value: str) -> bool:
        with self._lock:
            self._data.setdefault(hkey, {})[key] = value
        return True

    def hget(self, hkey: str, key: str) -> str | None:
        with self._lock:
            return self._data.get(hkey, {}).get(key)

    def acquire_lease(
        self, hkey: str, key: str, holder: LeaseHolder, ttl_s: float, takeover: bool = False
    ) -> LeaseResult:
        """``lease.decide`` under the lock (see ``Registry.acquire_lease``)."""
        check_ttl(ttl_s)
        with self._lock:
            leases = self._data.setdefault(hkey, {})
            current = Lease.from_json(leases.get(key))
            result = decide(current, holder, self._wall(), ttl_s, takeover)
            if result.acquired:
                leases[key] = result.lease.to_json()
        return result

    def hsync(self, hkey: str) -> None:
        """Nothing to refresh: there is one copy."""

    def check(self) -> None:
        """Always usable: the data lives in this process."""

    def describe(self) -> str:
        return "memory://"


if TYPE_CHECKING:  # mypy --strict checks this class against the Registry Protocol
    _backend: type[Registry] = MemoryRegistry
