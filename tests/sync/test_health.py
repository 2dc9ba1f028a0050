"""The health verdict of `car sync status`: plain functions over status objects."""

from __future__ import annotations

from typing import Any

from container_apps.sync.health import (
    EXIT_HALTED,
    EXIT_HEALTHY,
    EXIT_NOT_ALIVE,
    EXIT_QUARANTINED,
    exit_code,
    problems,
    warnings,
)

ALIVE = {"alive": True, "pid": 42, "detail": "runner.lock is held"}
DEAD = {"alive": False, "pid": None, "detail": "runner.lock is not held"}
QUARANTINE = [{"cid": "bafkreibad", "kind": "commit", "failures": 1}]


def status(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"halt": None, "quarantine": [], "runner": ALIVE}
    return {**base, **fields}


def test_alive_not_halted_nothing_quarantined_is_healthy() -> None:
    assert problems(status()) == []
    assert exit_code([status(), status()]) == EXIT_HEALTHY


def test_each_problem_has_its_own_code() -> None:
    assert exit_code([status(quarantine=QUARANTINE)]) == EXIT_QUARANTINED == 3
    assert exit_code([status(runner=DEAD)]) == EXIT_NOT_ALIVE == 4
    assert exit_code([status(halt="rollback failed")]) == EXIT_HALTED == 5


def test_liveness_unknown_or_missing_is_not_healthy() -> None:
    unknown = {"alive": None, "pid": None, "detail": "cannot read runner.lock"}
    [problem] = problems(status(runner=unknown))
    assert problem.kind == "not_alive" and "cannot read runner.lock" in problem.message
    assert exit_code([{"halt": None, "quarantine": []}]) == EXIT_NOT_ALIVE


def test_the_most_serious_problem_comes_first_and_sets_the_code() -> None:
    st = status(halt="disk full", runner=DEAD, quarantine=QUARANTINE)
    assert [p.kind for p in problems(st)] == ["halted", "not_alive", "quarantined"]
    assert exit_code([st]) == EXIT_HALTED
    # Across instances too: one quarantined, one dead runner -> the dead runner's code.
    assert exit_code([status(quarantine=QUARANTINE), status(runner=DEAD), status()]) == 4


def test_problem_messages_name_the_cause() -> None:
    [halted] = problems(status(halt="rollback could not restore /app/data/x"))
    assert halted.to_dict() == {
        "kind": "halted",
        "exit_code": 5,
        "message": "halted: rollback could not restore /app/data/x",
    }
    [quarantined] = problems(status(quarantine=QUARANTINE))
    assert quarantined.message == "1 quarantined: bafkreibad"


def test_an_unreachable_registry_is_a_warning_not_a_problem() -> None:
    view = {"url": "redis://127.0.0.1:1/0", "record": None, "error": "connection refused"}
    st = status(registry_now=view)
    assert problems(st) == []
    assert warnings(st) == ["registry unreachable: redis://127.0.0.1:1/0 (connection refused)"]
    assert warnings(status(registry_now=None)) == []


def test_an_invalid_registry_record_is_a_warning_naming_the_key() -> None:
    view = {"url": "sqlite:///r", "record": None, "error": None, "invalid": "cid: missing"}
    st = status(key="k", registry_now=view)
    assert problems(st) == []
    assert warnings(st) == ["registry record for key 'k' is invalid: cid: missing"]
