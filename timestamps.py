"""UTC ISO-8601 times, the one form every time a user reads is printed in.

History, status, snapshot lists, lease messages and alerts all show the same
``2026-12-01T15:43:34Z`` (README, "Logs and output"), so operators can compare and
sort them across nodes without knowing each host's zone.
"""

from __future__ import annotations

import time


def utc_iso(ts: float) -> str:
    """``ts`` (seconds since the epoch) as ``2026-12-01T15:43:34Z``.

    Raises:
        OverflowError, OSError, ValueError: ``ts`` is not a time the platform can show.
    """
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
