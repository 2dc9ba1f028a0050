"""BackendGate: may sync use its blob store and registry now? Checked at start, then with backoff.

At start every backend is checked once (``check()``: one cheap round trip, no retries),
so an unreachable Redis, a stopped S3 service or a garbage ``registry.sqlite`` is named in
the log right away instead of at the app's first request, and the start goes on. A
backend that failed is an outage like one that fails later: one WARNING naming its
redacted URL and the error, a re-check at the next tick and then with exponential backoff
(``FIRST_RETRY_S`` doubling up to ``MAX_RETRY_S``), and one "reachable again" line when it
passes. While the gate is shut the sync manager holds its role (see ``SyncManager.tick``).

Once every backend has passed the gate stays open: outages that start later are seen,
retried and logged once by the steps that meet them (``RecordSource``, the consumer's
download, the provider's publish), which are as cheap as a check and do the real work.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from ..errors import CarError
from .record_source import OutageLog

FIRST_RETRY_S = 2.0
MAX_RETRY_S = 60.0


class Checkable(Protocol):
    """What the gate needs of a backend (``BlobStore`` and ``Registry`` both fit)."""

    def check(self) -> None: ...

    def describe(self) -> str: ...


class BackendGate:
    """Open once every backend passed its check; re-checks failed ones with backoff."""

    def __init__(
        self,
        backends: Sequence[tuple[str, Checkable]],
        log: logging.Logger,
        *,
        first_retry: float = FIRST_RETRY_S,
        max_retry: float = MAX_RETRY_S,
    ) -> None:
        """Args: ``backends`` as (kind, backend) pairs, e.g. ("registry", registry)."""
        self._kinds = [kind for kind, _ in backends]
        self._outages = [
            (backend, OutageLog(f"{kind} {backend.describe()}", log)) for kind, backend in backends
        ]
        self._first_retry = first_retry
        self._max_retry = max_retry
        self._delay = first_retry
        self._next_check: float | None = None
        self._checked = False

    @property
    def is_open(self) -> bool:
        """True once every backend passed (no I/O)."""
        return self._checked and not any(outage.down for _, outage in self._outages)

    def reachability(self) -> list[tuple[str, bool]]:
        """(kind, passed its last check) for each backend (no I/O)."""
        return [
            (kind, not outage.down)
            for kind, (_, outage) in zip(self._kinds, self._outages, strict=True)
        ]

    def check_all(self) -> bool:
        """Check every backend now (at start); True if all passed. Never raises.

        A failure is logged once; the next ``ready`` (the first tick) checks again.
        """
        for backend, outage in self._outages:
            self._check(backend, outage)
        self._checked = True
        self._next_check = None
        self._delay = self._first_retry
        return self.is_open

    def ready(self, now: float) -> bool:
        """True if sync may use its backends at ``now`` (monotonic seconds).

        While shut, re-checks the failed backends when the backoff is due.
        """
        if not self._checked:
            return self.check_all()
        if self.is_open:
            return True
        if self._next_check is not None and now < self._next_check:
            return False
        for backend, outage in self._outages:
            if outage.down:
                self._check(backend, outage)
        if self.is_open:
            return True
        self._next_check = now + self._delay
        self._delay = min(self._delay * 2, self._max_retry)
        return False

    @staticmethod
    def _check(backend: Checkable, outage: OutageLog) -> None:
        try:
            backend.check()
        except CarError as exc:
            outage.failed(exc)
        except Exception as exc:  # untranslated by its backend: still an outage, not a crash
            outage.failed(CarError(f"{type(exc).__name__}: {exc}"))
        else:
            outage.ok()
