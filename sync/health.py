"""The health verdict of ``car sync status`` (README, "Health and status").

An instance is healthy when its runner is alive, it is not halted and nothing is in
quarantine. Each problem carries its exit code; the command exits with the highest code
among the listed instances, so the most serious problem wins: halted (5) needs an
operator, a dead runner (4) applies nothing until it is restarted, a quarantine (3) clears
itself when a good snapshot arrives. An unreachable registry is a warning, not a problem:
the runner rides out outages by itself and nothing local is wrong.

Plain functions over the status object (``sync/status.py``) plus the runner's liveness,
so every verdict is testable without a runner.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

EXIT_HEALTHY: Final = 0
EXIT_QUARANTINED: Final = 3
EXIT_NOT_ALIVE: Final = 4
EXIT_HALTED: Final = 5
# A data dir without instances: nothing runs there, most likely the wrong --data-dir.
EXIT_NO_INSTANCES: Final = EXIT_NOT_ALIVE


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason an instance is not healthy."""

    kind: str  # "halted", "not_alive" or "quarantined"
    exit_code: int
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "exit_code": self.exit_code, "message": self.message}


def problems(status: Mapping[str, Any]) -> list[Problem]:
    """What is wrong with one instance, most serious first (empty: healthy).

    ``status`` is a status object with ``runner`` (``{"alive", "pid", "detail"}``),
    ``halt`` and ``quarantine``; a missing ``runner`` counts as not alive.
    """
    found: list[Problem] = []
    if status.get("halt"):
        found.append(Problem("halted", EXIT_HALTED, f"halted: {status['halt']}"))
    runner = status.get("runner") or {}
    if runner.get("alive") is not True:
        detail = runner.get("detail") or "liveness unknown"
        found.append(Problem("not_alive", EXIT_NOT_ALIVE, f"runner not alive: {detail}"))
    quarantine = status.get("quarantine") or []
    if quarantine:
        cids = ", ".join(str(entry.get("cid")) for entry in quarantine)
        found.append(
            Problem("quarantined", EXIT_QUARANTINED, f"{len(quarantine)} quarantined: {cids}")
        )
    return found


def warnings(status: Mapping[str, Any]) -> list[str]:
    """What an operator should know but does not make the instance unhealthy."""
    view = status.get("registry_now") or {}
    if view.get("error"):
        return [f"registry unreachable: {view.get('url')} ({view['error']})"]
    if view.get("invalid"):
        return [f"registry record for key {status.get('key')!r} is invalid: {view['invalid']}"]
    return []


def exit_code(statuses: Iterable[Mapping[str, Any]]) -> int:
    """The command's exit code: the highest problem code, 0 when all are healthy."""
    codes = [p.exit_code for status in statuses for p in problems(status)]
    return max(codes, default=EXIT_HEALTHY)
