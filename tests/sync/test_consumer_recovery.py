"""Start-up recovery of a consumer killed (SIGKILL) in the middle of an apply.

Each case runs a real consumer in a subprocess (``tests/support/consumer_kill.py``), lets it
apply snapshot A, starts the apply of snapshot B, pauses it at one point, kills it with
SIGKILL and then "restarts" the runner the way ``car run`` does (``SyncManager.start()``:
recover, then apply before the first start if due; the container starts; then ticks).

- Killed after B's commit was durable: recovery must end exactly where the normal path
  ends, once: one received-history entry for B, ``last_apply.json`` naming B, A's local
  copy retired, ``car sync status`` showing B (issue 9, item 1).
- Killed mid-commit: the rollback at start is a crash, not a verdict on B: B is retried
  at once, up to ``CRASH_RETRIES`` times, then backs off like any failure (item 8).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from container_apps.sync import constants as C
from container_apps.sync.config import SyncConfig
from container_apps.sync.history import HistoryLog
from container_apps.sync.manager import SyncManager
from container_apps.sync.quarantine import CRASH_RETRIES, backoff_seconds
from container_apps.sync.status import instance_status
from container_apps.tests.support.consumer_kill import (
    NOW,
    instance_paths,
    kill_apply,
    recovery_env,
    snapshots,
)
from container_apps.tests.support.consumer_rig import (
    Env,
    leftovers,
    tree,
)
from container_apps.tests.support.spec_fields import RECEIVED_HISTORY_FIELDS

CONSUMER = {"ENABLED": True, "KEY": "test-key", "TYPE": "consumer", "POLL_INTERVAL": 1}


# --- the restarted runner ------------------------------------------------------------


def restarted_env(tmp: Path) -> Env:
    """A new runner process on the same dirs, B being the current record."""
    env = recovery_env(tmp, running=False)
    (a_archive, a), (b_archive, b) = snapshots(tmp)
    env.publish(a_archive, a)  # the memory store/registry died with the child
    env.publish(b_archive, b)
    return env


def restart(tmp: Path) -> tuple[Env, SyncManager]:
    """A new runner process on the same dirs: recover and apply-before-start, then start."""
    env = restarted_env(tmp)
    manager = SyncManager(SyncConfig.parse(CONSUMER), consumer=env.consumer)
    manager.start()
    assert manager.may_start()
    env.containers.start()  # what the runner does next
    return env, manager


def _reference_tree(tmp: Path) -> dict[str, Any]:
    """The volume after the normal path applied A then B."""
    env = recovery_env(tmp / "reference")
    (a_archive, a), (b_archive, b) = snapshots(tmp / "reference")
    env.publish(a_archive, a)
    assert env.consumer.tick(NOW).applied  # type: ignore[union-attr]
    env.publish(b_archive, b)
    assert env.consumer.tick(NOW + 10).applied  # type: ignore[union-attr]
    return tree(env.volume)


def assert_reported_once(env: Env, tmp: Path) -> None:
    """Exactly what the normal path leaves after applying A then B."""
    (_, a), (_, b) = snapshots(tmp)
    paths = instance_paths(tmp)
    entries = HistoryLog(paths.history_received).entries()
    assert [e.cid for e in entries] == [a.cid, b.cid]
    latest = entries[-1].data
    assert set(latest) >= RECEIVED_HISTORY_FIELDS
    assert (latest["version"], latest["metadata"]) == (b.version, b.metadata)
    assert latest["manifest"] == b.manifest.to_dict()
    assert entries[0].data["deletion"]["deletion_succeeded"] is True
    assert not (env.store.cache_dir / a.cid).exists()  # previous local copy retired
    last = json.loads((paths.volume_sync_dir / C.LAST_APPLY_FILE).read_text())
    assert (last["cid"], last["version"]) == (b.cid, b.version)
    status = instance_status(paths)
    assert status["last_applied"]["cid"] == b.cid
    assert status["apply_state"] == C.APPLY_STATE_APPLIED
    assert status["quarantine"] == [] and status["halt"] is None
    assert leftovers(env.volume) == []
    assert not (paths.sync_state / C.JOURNAL_FILE).exists()


@pytest.mark.parametrize(
    "point", ["journal_committed", "state_applied", "before_restart", "history_written"]
)
def test_apply_finished_by_recovery_is_reported_once_like_the_normal_path(
    tmp_path: Path, point: str
) -> None:
    expected = _reference_tree(tmp_path)
    kill_apply(tmp_path, point)
    env, manager = restart(tmp_path)
    assert env.containers.calls == ["start"]  # no second apply of B, no stop
    manager.tick(0.0)  # the first tick after the start
    assert_reported_once(env, tmp_path)
    assert tree(env.volume) == expected
    latest = HistoryLog(instance_paths(tmp_path).history_received).entries()[-1].data
    # Written by the killed runner itself, or by recovery (which says so; the commit's
    # duration died with the runner).
    recovered = point != "history_written"
    assert latest.get("finished_by_recovery", False) is recovered
    assert (latest["durations"]["commit"] is None) is recovered
    manager.tick(5.0)  # later ticks and a second restart report nothing again
    again, manager = restart(tmp_path)
    manager.tick(0.0)
    assert_reported_once(again, tmp_path)
    assert again.containers.calls == ["start"]


def test_last_apply_json_is_written_after_the_app_started(tmp_path: Path) -> None:
    kill_apply(tmp_path, "before_restart")
    (_, a), _ = snapshots(tmp_path)
    env, manager = restart(tmp_path)
    last = json.loads((instance_paths(tmp_path).volume_sync_dir / C.LAST_APPLY_FILE).read_text())
    assert last["cid"] == a.cid  # not yet: the app is told once it runs, as after a tick
    manager.tick(0.0)
    assert_reported_once(env, tmp_path)


# --- item 8: a crash is not a verdict on the snapshot -----------------------------------


def test_apply_killed_mid_commit_is_rolled_back_and_retried_at_once(tmp_path: Path) -> None:
    expected = _reference_tree(tmp_path)
    kill_apply(tmp_path, "op_2")
    assert leftovers(tmp_path / "volume") != []  # the kill left a half-applied volume
    env, manager = restart(tmp_path)  # rolls back, then applies B before the first start
    assert env.containers.calls == ["start"]
    assert tree(env.volume) == expected
    (_, b) = snapshots(tmp_path)[1]
    assert env.consumer.quarantine.entries() == []
    assert env.consumer.quarantine.interruptions(b.cid, b.manifest.digest()) == 0  # success
    manager.tick(0.0)
    assert_reported_once(env, tmp_path)


def test_repeated_crashes_are_retried_at_once_then_back_off_like_a_failure(
    tmp_path: Path,
) -> None:
    (_, a), (_, b) = snapshots(tmp_path)
    now = NOW + 100
    for crash in range(1, CRASH_RETRIES + 2):
        kill_apply(tmp_path, "op_2")
        env = restarted_env(tmp_path)
        env.consumer.recover(now)
        assert env.consumer.state.applied_cid() == a.cid
        assert leftovers(env.volume) == []
        assert env.consumer.quarantine.interruptions(b.cid, b.manifest.digest()) == crash
        if crash <= CRASH_RETRIES:  # not quarantined: the next start applies it
            assert env.consumer.quarantine.entries() == []
            assert env.consumer.needs_initial_apply(now)
    [entry] = env.consumer.quarantine.entries()  # the 4th crash: a failure, with backoff
    assert (entry.cid, entry.kind, entry.failures) == (b.cid, "commit", 1)
    assert "interrupted" in entry.error and str(CRASH_RETRIES + 1) in entry.error
    assert entry.retry_at == now + backoff_seconds(1)
    assert not env.consumer.needs_initial_apply(now + backoff_seconds(1) - 1)
    assert env.consumer.needs_initial_apply(now + backoff_seconds(1))
