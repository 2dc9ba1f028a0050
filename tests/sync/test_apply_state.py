"""ApplyState: current_apply.json with the durably applied CID, and halt.json."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from container_apps.sync import constants as C
from container_apps.sync.apply_state import ApplyState, CurrentApply, Halt, IllegalTransition

NOW = 1_764_400_000.0


def test_fresh_consumer_has_no_applied_cid(tmp_path: Path) -> None:
    assert ApplyState(tmp_path).applied_cid() is None
    assert ApplyState(tmp_path).current() is None


def test_applied_cid_survives_later_states_for_other_cids(tmp_path: Path) -> None:
    state = ApplyState(tmp_path)
    state.set_state(C.APPLY_STATE_APPLIED, cid="c1", version=1, now=NOW)
    state.set_state(C.APPLY_STATE_PREPARING, cid="c2", version=2, now=NOW + 1)
    state.set_state(
        C.APPLY_STATE_FAILED_ROLLED_BACK,
        cid="c2",
        version=2,
        now=NOW + 2,
        error="boom",
        stage="commit",
    )
    assert ApplyState(tmp_path).applied_cid() == "c1"
    current = ApplyState(tmp_path).current()
    assert current is not None
    assert (current["state"], current["cid"], current["error"], current["stage"]) == (
        "failed_rolled_back",
        "c2",
        "boom",
        "commit",
    )
    assert os.stat(tmp_path / C.CURRENT_APPLY_FILE).st_mode & 0o777 == 0o644


@pytest.mark.parametrize("state", C.APPLY_STATES)
def test_every_spec_state_can_be_recorded(tmp_path: Path, state: str) -> None:
    ApplyState(tmp_path).set_state(state, cid="c", version=None, now=NOW)
    assert ApplyState(tmp_path).current()["state"] == state  # type: ignore[index]


def test_unknown_state_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown apply state"):
        ApplyState(tmp_path).set_state("done", cid="c", version=1, now=NOW)
    assert ApplyState(tmp_path).current() is None


def test_halt_persists_until_cleared(tmp_path: Path) -> None:
    ApplyState(tmp_path).halt("rollback failed", now=NOW, cid="c")
    state = ApplyState(tmp_path)
    assert state.is_halted() and state.halt_reason() == "rollback failed"
    assert state.clear_halt() is True
    assert not state.is_halted() and state.halt_reason() is None
    assert state.clear_halt() is False


def test_unreadable_halt_file_still_halts(tmp_path: Path) -> None:
    (tmp_path / C.HALT_FILE).write_text("garbage")
    state = ApplyState(tmp_path)
    assert state.is_halted() and state.halt_reason()


# --- the state machine: named transitions ------------------------------------------------


def test_an_apply_goes_preparing_applying_applied_through_named_steps(tmp_path: Path) -> None:
    state = ApplyState(tmp_path)
    assert state.begin_prepare("c1", 1, now=NOW).state == C.APPLY_STATE_PREPARING
    assert state.begin_commit(now=NOW + 1).state == C.APPLY_STATE_APPLYING
    applied = state.mark_applied(now=NOW + 2)
    assert (applied.state, applied.cid, applied.version) == (C.APPLY_STATE_APPLIED, "c1", 1)
    assert (applied.started_timestamp, applied.updated_timestamp) == (NOW, NOW + 2)
    assert (applied.applied_cid, applied.applied_timestamp) == ("c1", NOW + 2)
    assert ApplyState(tmp_path).load() == applied
    assert state.applied_cid() == "c1"


def test_failures_keep_the_applied_cid_and_say_where(tmp_path: Path) -> None:
    state = ApplyState(tmp_path)
    state.begin_prepare("c1", 1, now=NOW)
    state.begin_commit(now=NOW)
    state.mark_applied(now=NOW)
    state.begin_prepare("c2", 2, now=NOW + 1)
    failed = state.mark_failed(rolled_back=False, error="bad", stage="extract", now=NOW + 2)
    assert (failed.state, failed.stage, failed.applied_cid) == ("failed_preflight", "extract", "c1")
    state.begin_prepare("c3", 3, now=NOW + 3)
    state.begin_commit(now=NOW + 3)
    assert state.mark_failed(rolled_back=True, error="x", stage="commit", now=NOW + 4).state == (
        C.APPLY_STATE_FAILED_ROLLED_BACK
    )
    state.begin_prepare("c4", 4, now=NOW + 5)
    state.begin_commit(now=NOW + 5)
    uncertain = state.mark_uncertain("rollback failed", now=NOW + 6)
    assert (uncertain.state, uncertain.stage, uncertain.error) == (
        C.APPLY_STATE_UNCERTAIN,
        C.STAGE_COMMIT,
        "rollback failed",
    )
    assert state.applied_cid() == "c1"


@pytest.mark.parametrize(
    ("scene", "step", "words"),
    [
        ((), lambda s: s.begin_commit(now=NOW), "begin the commit"),
        (("prepare",), lambda s: s.mark_applied(now=NOW), "mark the apply applied"),
        (("prepare", "commit"), lambda s: s.begin_commit(now=NOW), "begin the commit"),
        (
            ("prepare", "commit"),
            lambda s: s.mark_failed(rolled_back=False, error="e", stage=None, now=NOW),
            "mark the apply failed_preflight",
        ),
        (("prepare",), lambda s: s.mark_uncertain("e", now=NOW), "mark the apply uncertain"),
        (("prepare", "commit", "applied"), lambda s: s.mark_applied(now=NOW), "applied"),
    ],
)
def test_a_step_out_of_order_is_refused_and_the_file_kept(
    tmp_path: Path, scene: tuple[str, ...], step: Any, words: str
) -> None:
    state = ApplyState(tmp_path)
    moves = {
        "prepare": lambda: state.begin_prepare("c", 1, now=NOW),
        "commit": lambda: state.begin_commit(now=NOW),
        "applied": lambda: state.mark_applied(now=NOW),
    }
    for move in scene:
        moves[move]()
    before = state.current()
    with pytest.raises(IllegalTransition) as caught:
        step(state)
    assert words in str(caught.value)
    assert (state.load().state or "no apply") in str(caught.value)
    assert state.current() == before


def test_start_up_recovery_records_what_the_journal_proved_from_any_state(tmp_path: Path) -> None:
    state = ApplyState(tmp_path)
    state.begin_prepare("c1", 1, now=NOW)
    assert state.finish_by_recovery("c1", 1, now=NOW + 1).applied_cid == "c1"
    rolled = state.roll_back_by_recovery("c2", None, "apply interrupted", now=NOW + 2)
    assert (rolled.state, rolled.stage, rolled.error) == (
        C.APPLY_STATE_FAILED_ROLLED_BACK,
        C.STAGE_COMMIT,
        "apply interrupted",
    )
    state.enter_halt("c2", None, "journal unreadable", now=NOW + 3)
    assert state.load().state == C.APPLY_STATE_UNCERTAIN and state.is_halted()
    assert state.applied_cid() == "c1"


# --- tolerant reading ------------------------------------------------------------------------


def test_current_apply_round_trips_through_its_record() -> None:
    record = CurrentApply().begin_prepare("c", 7, now=NOW).begin_commit(now=NOW + 1)
    assert set(record.to_dict()) == {
        "state",
        "cid",
        "version",
        "started_timestamp",
        "updated_timestamp",
        "error",
        "stage",
        "applied_cid",
        "applied_version",
        "applied_timestamp",
    }
    assert CurrentApply.from_dict(json.loads(json.dumps(record.to_dict()))) == record


@pytest.mark.parametrize("text", ["garbage", "[1, 2]", '{"state": "done", "applied_cid": 5}'])
def test_a_damaged_current_apply_reads_as_no_apply_and_a_new_one_begins(
    tmp_path: Path, text: str
) -> None:
    (tmp_path / C.CURRENT_APPLY_FILE).write_text(text)
    state = ApplyState(tmp_path)
    assert state.load().state is None and state.applied_cid() is None
    assert state.begin_prepare("c", 1, now=NOW).state == C.APPLY_STATE_PREPARING


def test_an_older_current_apply_missing_fields_keeps_its_applied_cid(tmp_path: Path) -> None:
    (tmp_path / C.CURRENT_APPLY_FILE).write_text('{"state": "applied", "applied_cid": "c0"}')
    state = ApplyState(tmp_path)
    current = state.load()
    assert (current.state, current.cid, current.version) == ("applied", "", None)
    assert state.begin_prepare("c1", 1, now=NOW).applied_cid == "c0"


def test_halt_round_trips_and_a_damaged_reason_still_halts(tmp_path: Path) -> None:
    halt = Halt(reason="rollback failed", cid="c", halted_at=NOW)
    assert Halt.from_dict(halt.to_dict()) == halt
    (tmp_path / C.HALT_FILE).write_text('{"reason": 5}')
    assert ApplyState(tmp_path).halt_reason() == "halt.json is unreadable"
