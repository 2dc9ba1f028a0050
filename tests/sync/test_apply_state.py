"""ApplyState: current_apply.json with the durably applied CID, and halt.json."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from container_apps.sync import constants as C
from container_apps.sync.apply_state import ApplyState

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
