"""MemoryRegistry: a real, in-process Registry for fast orchestration tests.

Passes the registry contract suite. Several runners in one test can share one instance.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, ClassVar

from .base import Registry


class MemoryRegistry:
    """A dict of dicts behind a lock; every hset is acknowledged."""

    scheme: ClassVar[str] = "memory"

    def __init__(self) -> None:
        self._data: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def hset(self, hkey: str, key: str, value: str) -> bool:
        with self._lock:
            self._data.setdefault(hkey, {})[key] = value
        return True

    def hget(self, hkey: str, key: str) -> str | None:
        with self._lock:
            return self._data.get(hkey, {}).get(key)

    def hsync(self, hkey: str) -> None:
        """Nothing to refresh: there is one copy."""

    def check(self) -> None:
        """Always usable: the data lives in this process."""

    def describe(self) -> str:
        return "memory://"


if TYPE_CHECKING:  # mypy --strict checks this class against the Registry Protocol
    _backend: type[Registry] = MemoryRegistry
