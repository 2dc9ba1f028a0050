"""RestartPolicy: when to bring an exited app container back (README, "Lifecycle").

A plain class driven by an injected clock, so it is tested without Docker or sleeping.
Policies: ``always`` restarts after any exit, ``on-failure`` only after a non-zero exit
(or an unknown one), ``no`` never. Restarts wait an exponential backoff:
``initial * multiplier**n`` capped at ``maximum``, where ``n`` counts consecutive
restarts; after ``max_retries`` consecutive restarts (0 = unlimited) the policy gives up.

Reset rule (our decision, like kubelet's crash-loop reset): a container that stayed up
for at least ``maximum`` seconds -- the longest wait the policy would ever impose --
counts as healthy, so its next exit starts again at ``initial`` with a fresh retry count.
A stop and start by volume-sync is not an exit: the app's run time keeps counting across
it (``resumed()``), so frequent snapshots never keep a healthy app from earning the reset.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

PolicyName = Literal["always", "on-failure", "no"]


class Action(enum.Enum):
    RESTART = "restart"  # restart once ``at`` is reached
    GIVE_UP = "give_up"  # leave the container down


@dataclass(frozen=True, slots=True)
class RestartDecision:
    """What to do about one container exit, and why (for the log)."""

    action: Action
    reason: str
    at: float | None = None  # clock time of the restart, for RESTART
    delay: float = 0.0


class RestartPolicy:
    """Decides restarts with exponential backoff; see the module docstring."""

    def __init__(
        self,
        policy: PolicyName,
        *,
        initial: float = 10.0,
        maximum: float = 600.0,
        multiplier: float = 2.0,
        max_retries: int = 5,
        clock: Callable[[], float],
    ) -> None:
        self.policy = policy
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.max_retries = max_retries
        self._clock = clock
        self._restarts = 0  # consecutive restarts since the last healthy run
        self._started_at: float | None = None
        self._pending: RestartDecision | None = None

    @property
    def restarts(self) -> int:
        """Consecutive restarts so far (0 after a healthy run)."""
        return self._restarts

    @property
    def pending(self) -> RestartDecision | None:
        """The decision for the current exit, until the container starts again."""
        return self._pending

    def started(self) -> None:
        """Record that the container (re)started now."""
        self._started_at = self._clock()
        self._pending = None

    def resumed(self) -> None:
        """Record a start after a stop the app did not choose (volume-sync): run time
        keeps counting from the last ``started()``."""
        if self._started_at is None:
            self._started_at = self._clock()
        self._pending = None

    def exited(self, exit_code: int | None) -> RestartDecision:
        """Decide about an exit; repeated calls for the same exit return the same decision."""
        if self._pending is None:
            self._pending = self._decide(exit_code)
        return self._pending

    def due(self) -> bool:
        """True when a pending restart's backoff has elapsed."""
        pending = self._pending
        return (
            pending is not None
            and pending.action is Action.RESTART
            and self._clock() >= (pending.at or 0.0)
        )

    def _decide(self, exit_code: int | None) -> RestartDecision:
        now = self._clock()
        if self._started_at is not None and now - self._started_at >= self.maximum:
            self._restarts = 0
        if self.policy == "no":
            return RestartDecision(Action.GIVE_UP, "RESTART_POLICY is no")
        if self.policy == "on-failure" and exit_code == 0:
            return RestartDecision(Action.GIVE_UP, "exited with code 0 (RESTART_POLICY on-failure)")
        if self.max_retries and self._restarts >= self.max_retries:
            return RestartDecision(
                Action.GIVE_UP, f"gave up after {self._restarts} restarts (RESTART_MAX_RETRIES)"
            )
        delay = min(self.initial * self.multiplier**self._restarts, self.maximum)
        self._restarts += 1
        return RestartDecision(
            Action.RESTART,
            f"restart {self._restarts} after exit code {exit_code} in {delay:g}s",
            at=now + delay,
            delay=delay,
        )
