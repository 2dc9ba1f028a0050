"""RetryPolicy: the one backoff for transient backend errors (stores and registries).

Backends never retry; they classify errors (``TransientError`` vs permanent, G3). The
retrying wrappers (``stores/retrying.py``, ``registries/retrying.py``) run every call
through ``RetryPolicy.call``, built on tenacity: only ``TransientError`` is retried,
with exponential backoff, a bounded number of attempts *and* a bounded total time. Each
retry is logged at DEBUG only: an outage lasts many calls, and the callers that notice it
(``RecordSource``, the consumer, the sync manager's backend check) log it once when it
starts and once when it ends (README: one line per state change). Tests inject a policy
with a no-op ``sleep`` to run fast.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import tenacity

from .errors import TransientError

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry a transient failure.

    Attributes:
        attempts: total tries, including the first.
        initial_delay: seconds before the first retry; doubles each time.
        max_delay: cap on one backoff sleep.
        max_total: give up once this many seconds have passed since the first try.
        sleep: the sleep function (tests pass a no-op).
    """

    attempts: int = 4
    initial_delay: float = 0.2
    max_delay: float = 2.0
    max_total: float = 30.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def call(self, fn: Callable[[], T], *, what: str) -> T:
        """Run ``fn``; retry it while it raises ``TransientError``.

        Args:
            fn: the operation (must be idempotent; every store/registry call is).
            what: a label for the log line, e.g. "put to s3://bucket".

        Returns:
            Whatever ``fn`` returns.

        Raises:
            TransientError: the last transient error once attempts or time ran out.
            Exception: any other error from ``fn``, at once and unchanged.
        """

        def log_retry(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            delay = state.next_action.sleep if state.next_action else 0.0
            log.debug(
                "%s failed (attempt %d/%d): %s; retrying in %.1f s",
                what,
                state.attempt_number,
                self.attempts,
                exc,
                delay,
            )

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts)
            | tenacity.stop_after_delay(self.max_total),
            wait=tenacity.wait_exponential(
                multiplier=self.initial_delay, min=self.initial_delay, max=self.max_delay
            ),
            retry=tenacity.retry_if_exception_type(TransientError),
            reraise=True,
            sleep=self.sleep,
            before_sleep=log_retry,
        )
        return retrying(fn)
