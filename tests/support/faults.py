"""FaultyBlobStore / FaultyRegistry: wrap a real store or registry and fail on schedule.

Kopia's ``FaultyStorage`` shape (G8): the wrapper delegates to a *real* backend, except
that each call of an operation first takes the next entry of that operation's schedule:

- ``None`` → the call goes through unchanged;
- an exception (instance) → raised instead of calling the backend;
- ``Fault(exc, after=True)`` → the backend call happens, then ``exc`` is raised (the
  "it worked but the reply was lost" case, e.g. a registry ack that never arrived).

When a schedule is used up, calls go through. ``assert_all_faults_fired()`` fails a test
whose scheduled faults were never reached (a fault test that cannot fail is a defect).
``calls`` records every (operation, args) in order.

    store = FaultyBlobStore(MemoryBlobStore(tmp), faults={"put": [StoreUnavailable("x"), None]})
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from container_apps.registries.base import Registry
from container_apps.registries.lease import LeaseHolder, LeaseResult
from container_apps.stores.base import BlobStore, Progress

T = TypeVar("T")


@dataclass(frozen=True)
class Fault:
    """One scheduled failure: raise ``err`` before (default) or after the real call."""

    err: BaseException
    after: bool = False


ScheduleEntry = Fault | BaseException | None


class _Schedule:
    """Per-operation fault queues shared by both wrappers."""

    def __init__(self, ops: Iterable[str], faults: Mapping[str, list[ScheduleEntry]]) -> None:
        unknown = set(faults) - set(ops)
        if unknown:
            raise ValueError(f"unknown operations {sorted(unknown)}; known: {sorted(ops)}")
        self._queues = {op: list(faults.get(op, [])) for op in ops}
        self._lock = threading.Lock()
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def run(self, op: str, args: tuple[Any, ...], fn: Callable[[], T]) -> T:
        with self._lock:
            self.calls.append((op, args))
            queue = self._queues[op]
            entry = queue.pop(0) if queue else None
        if entry is None:
            return fn()
        fault = entry if isinstance(entry, Fault) else Fault(entry)
        if not fault.after:
            raise fault.err
        fn()
        raise fault.err

    def assert_all_fired(self) -> None:
        with self._lock:
            left = {op: q for op, q in self._queues.items() if q}
        assert not left, f"scheduled faults never fired: {left}"

    def count(self, op: str) -> int:
        with self._lock:
            return sum(1 for name, _ in self.calls if name == op)


class FaultyBlobStore:
    """A BlobStore that fails ``put``/``get``/``get_range``/``delete``/``check`` on schedule."""

    scheme: ClassVar[str] = "faulty"

    def __init__(
        self, inner: BlobStore, faults: Mapping[str, list[ScheduleEntry]] | None = None
    ) -> None:
        self.inner = inner
        self._schedule = _Schedule(("put", "get", "get_range", "delete", "check"), faults or {})

    @property
    def calls(self) -> list[tuple[str, tuple[Any, ...]]]:
        return self._schedule.calls

    def count(self, op: str) -> int:
        """How many times ``op`` was called (faulted or not)."""
        return self._schedule.count(op)

    def put(self, src: Path, *, progress: Progress | None = None) -> str:
        return self._schedule.run("put", (src,), lambda: self.inner.put(src, progress=progress))

    def get(
        self,
        cid: str,
        *,
        sha256: str | None = None,
        max_bytes: int | None = None,
        progress: Progress | None = None,
    ) -> Path:
        return self._schedule.run(
            "get",
            (cid,),
            lambda: self.inner.get(cid, sha256=sha256, max_bytes=max_bytes, progress=progress),
        )

    def get_range(self, cid: str, offset: int, length: int) -> bytes:
        return self._schedule.run(
            "get_range", (cid, offset, length), lambda: self.inner.get_range(cid, offset, length)
        )

    def delete(self, cid: str, *, remote: bool, local: bool) -> None:
        self._schedule.run(
            "delete",
            (cid, remote, local),
            lambda: self.inner.delete(cid, remote=remote, local=local),
        )

    def check(self) -> None:
        self._schedule.run("check", (), self.inner.check)

    def sweep_local(self, *, keep: Collection[str] = ()) -> list[str]:
        # Start-up housekeeping, not a scheduled operation: never faulted, not in ``calls``.
        return self.inner.sweep_local(keep=keep)

    def describe(self) -> str:
        return self.inner.describe()

    def assert_all_faults_fired(self) -> None:
        """Fail if any scheduled fault was never reached."""
        self._schedule.assert_all_fired()


class FaultyRegistry:
    """A Registry that fails ``hset``/``hget``/``hsync``/``check`` on schedule, else delegates."""

    scheme: ClassVar[str] = "faulty"

    def __init__(
        self, inner: Registry, faults: Mapping[str, list[ScheduleEntry]] | None = None
    ) -> None:
        self.inner = inner
        self._schedule = _Schedule(
            ("hset", "hget", "hsync", "check", "acquire_lease"), faults or {}
        )

    @property
    def calls(self) -> list[tuple[str, tuple[Any, ...]]]:
        return self._schedule.calls

    def count(self, op: str) -> int:
        """How many times ``op`` was called (faulted or not)."""
        return self._schedule.count(op)

    def hset(self, hkey: str, key: str, value: str) -> bool:
        return self._schedule.run(
            "hset", (hkey, key, value), lambda: self.inner.hset(hkey, key, value)
        )

    def hget(self, hkey: str, key: str) -> str | None:
        return self._schedule.run("hget", (hkey, key), lambda: self.inner.hget(hkey, key))

    def acquire_lease(
        self, hkey: str, key: str, holder: LeaseHolder, ttl_s: float, takeover: bool = False
    ) -> LeaseResult:
        return self._schedule.run(
            "acquire_lease",
            (hkey, key, holder),
            lambda: self.inner.acquire_lease(hkey, key, holder, ttl_s, takeover),
        )

    def hsync(self, hkey: str) -> None:
        self._schedule.run("hsync", (hkey,), lambda: self.inner.hsync(hkey))

    def check(self) -> None:
        self._schedule.run("check", (), self.inner.check)

    def describe(self) -> str:
        return self.inner.describe()

    def assert_all_faults_fired(self) -> None:
        """Fail if any scheduled fault was never reached."""
        self._schedule.assert_all_fired()
