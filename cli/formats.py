"""How the CLI prints values: UTC ISO-8601 times and human (binary) sizes.

One spelling for every command, so ``status`` and ``history`` agree and an operator can
paste a time from one into a log search of the other. Times are UTC with a ``Z``: a runner
and the operator's terminal are often in different zones, and journald/Loki store UTC.
"""

from __future__ import annotations

from typing import Any

from ..timestamps import utc_iso

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


def iso_utc(ts: Any) -> str:
    """``2026-12-01T15:43:34Z`` for a Unix time; ``-`` for anything else (a damaged entry)."""
    if isinstance(ts, bool) or not isinstance(ts, int | float):
        return "-"
    try:
        return utc_iso(ts)
    except (OverflowError, OSError, ValueError):
        return "-"


def human_size(size: Any) -> str:
    """``42 B``, ``1.2 MiB``: powers of 1024, one decimal; ``-`` when unknown."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        return "-"
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in _UNITS:
        value /= 1024
        if value < 1024 or unit == _UNITS[-1]:
            break
    return f"{value:.1f} {unit}"


def seconds(value: Any) -> str:
    """``0.30s``; ``-`` when unknown."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    return f"{value:.2f}s"
