"""RestartPolicy: always / on-failure / no with exponential backoff, on a fake clock."""

from __future__ import annotations

from typing import Any

import pytest
from container_apps.runner.restart_policy import Action, RestartPolicy


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(policy: Any = "always", **kwargs: Any) -> tuple[RestartPolicy, FakeClock]:
    clock = FakeClock()
    return RestartPolicy(policy, clock=clock, **kwargs), clock


def crash(policy: RestartPolicy, clock: FakeClock, code: int | None = 1) -> float:
    """Start, crash after 1 s, return the backoff the policy chose."""
    policy.started()
    clock.now += 1
    decision = policy.exited(code)
    assert decision.action is Action.RESTART
    return decision.delay


def test_backoff_doubles_from_initial_and_caps_at_max() -> None:
    policy, clock = make(initial=10, maximum=60, multiplier=2, max_retries=0)
    delays = [crash(policy, clock) for _ in range(6)]
    assert delays == [10, 20, 40, 60, 60, 60]


def test_restart_is_due_only_after_the_backoff() -> None:
    policy, clock = make(initial=10)
    crash(policy, clock)
    assert not policy.due()
    clock.now += 9.9
    assert not policy.due()
    clock.now += 0.1
    assert policy.due()


def test_repeated_exited_calls_for_one_exit_keep_the_same_decision() -> None:
    policy, clock = make(initial=10)
    crash(policy, clock)
    first = policy.exited(1)
    clock.now += 5
    assert policy.exited(1) is first
    assert policy.restarts == 1


def test_gives_up_after_max_retries() -> None:
    policy, clock = make(initial=1, max_retries=3)
    for _ in range(3):
        crash(policy, clock)
    policy.started()
    clock.now += 1
    decision = policy.exited(1)
    assert decision.action is Action.GIVE_UP
    assert "RESTART_MAX_RETRIES" in decision.reason
    assert not policy.due()


def test_zero_max_retries_means_unlimited() -> None:
    policy, clock = make(initial=1, maximum=5, max_retries=0)
    for _ in range(50):
        crash(policy, clock)
    assert policy.restarts == 50


def test_stable_run_of_max_backoff_resets_the_count() -> None:
    policy, clock = make(initial=10, maximum=100, max_retries=3)
    assert [crash(policy, clock) for _ in range(3)] == [10, 20, 40]
    policy.started()
    clock.now += 100  # ran as long as the longest backoff: healthy
    decision = policy.exited(1)
    assert decision.action is Action.RESTART
    assert decision.delay == 10
    assert policy.restarts == 1


def test_on_failure_restarts_failures_but_not_clean_exits() -> None:
    policy, clock = make("on-failure", initial=1)
    assert crash(policy, clock, code=3) == 1
    policy.started()
    assert policy.exited(0).action is Action.GIVE_UP


def test_on_failure_restarts_when_exit_code_is_unknown() -> None:
    policy, clock = make("on-failure", initial=1)
    assert crash(policy, clock, code=None) == 1


@pytest.mark.parametrize("code", [0, 1, None])
def test_policy_no_never_restarts(code: int | None) -> None:
    policy, _ = make("no")
    policy.started()
    assert policy.exited(code).action is Action.GIVE_UP


def test_always_restarts_after_a_clean_exit() -> None:
    policy, clock = make("always", initial=1)
    assert crash(policy, clock, code=0) == 1


def test_sync_restarts_do_not_reset_the_healthy_run_clock() -> None:
    # Snapshots stop and start the app every few minutes; an app that crashes once a
    # day must still count as healthy between crashes, not pile up to RESTART_MAX_RETRIES.
    policy, clock = make(initial=10, maximum=600, max_retries=2)
    for _ in range(3):  # three crashes, a day apart
        policy.started()
        for _ in range(288):  # a sync stop/start every 5 minutes
            clock.now += 300
            policy.resumed()
        decision = policy.exited(1)
        assert decision.action is Action.RESTART
        assert decision.delay == 10
        clock.now += decision.delay


def test_resumed_clears_a_pending_decision() -> None:
    policy, _clock = make(initial=10)
    policy.started()
    policy.exited(1)
    policy.resumed()
    assert policy.pending is None
