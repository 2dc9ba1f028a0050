"""Start-up recovery of a consumer killed (SIGKILL) in the middle of an apply.

Each case runs a real consumer in a subprocess, lets it apply snapshot A, starts the
apply of snapshot B, pauses it at one point, kills it with SIGKILL and then "restarts"
the runner the way ``car run`` does (``SyncManager.start()``: recover, then apply before
the first start if due; the container starts; then ticks).

- Killed after B's commit was durable: recovery must end exactly where the normal path
  ends, once: one received-history entry for B, ``last_apply.json`` naming B, A's local
  copy retired, ``car sync status`` showing B (issue 9, item 1).
- Killed mid-commit: the rollback at start is a crash, not a verdict on B: B is retried
  at once, up to ``CRASH_RETRIES`` times, then backs off like any failure (item 8).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from container_apps.layout import DataDir, InstancePaths
from container_apps.sync import constants as C
from container_apps.sync.apply import ApplyTransaction
from container_apps.sync.apply_state import ApplyState
from container_apps.sync.config import SyncConfig
from container_apps.sync.history import HistoryLog
from container_apps.sync.manager import SyncManager
from container_apps.sync.quarantine import CRASH_RETRIES, backoff_seconds
from container_apps.sync.records import SyncRecord
from container_apps.sync.status import instance_status
from container_apps.tests.support.consumer_rig import (
    Env,
    build_snapshot,
    f,
    leftovers,
    make_env,
    make_record,
    new_entries,
    seed_old,
    tree,
)
from container_apps.tests.support.spec_fields import RECEIVED_HISTORY_FIELDS

NOW = 1_764_400_000.0
CONSUMER = {"ENABLED": True, "KEY": "test-key", "TYPE": "consumer", "POLL_INTERVAL": 1}


def _b_entries() -> list[Any]:
    return [*new_entries(), f("app/data/replace.txt", b"B bytes"), f("app/data/b.txt", b"B")]


def _paths(tmp: Path) -> InstancePaths:
    paths = DataDir(tmp / "data").instance("consumer-1")
    paths.ensure()
    return paths


def _env(tmp: Path, **kw: Any) -> Env:
    volume = tmp / "volume"
    if not volume.exists():
        volume.mkdir(parents=True)
        seed_old(volume)
    return make_env(tmp, volume, paths=_paths(tmp), **kw)


def _snapshots(tmp: Path) -> tuple[tuple[Path, SyncRecord], tuple[Path, SyncRecord]]:
    a = build_snapshot(tmp / "a.tar.zst", new_entries())
    b = build_snapshot(tmp / "b.tar.zst", _b_entries())
    return (a, make_record(a)), (b, make_record(b, version=1_764_300_100))


# --- the child: apply A, then B up to a pause point ------------------------------------

_CHILD = """
import sys
from pathlib import Path
from container_apps.tests.sync.test_consumer_recovery import child_apply
child_apply(Path(sys.argv[1]), sys.argv[2])
"""


def _pause(tmp: Path) -> None:
    (tmp / "paused").write_text("1")
    time.sleep(3600)


def _install_pause(env: Env, point: str) -> None:
    """Make the next apply stop dead at ``point`` (the parent then SIGKILLs us)."""
    tmp = env.tmp
    if point == "journal_committed":  # journal says committed; state still "applying"

        def paused_mark_applied(self: ApplyState, **kw: Any) -> Any:
            _pause(tmp)

        ApplyState.mark_applied = paused_mark_applied  # type: ignore[method-assign]
    elif point == "state_applied":  # state "applied"; backups and journal still there
        ApplyTransaction.finish = lambda self: _pause(tmp)  # type: ignore[assignment,method-assign,return-value]
    elif point == "before_restart":  # journal gone, state applied, app not started yet
        env.containers.start = lambda: _pause(tmp)  # type: ignore[method-assign]
    elif point == "history_written":  # B's history entry written, last_apply.json not yet
        append = HistoryLog.append

        def paused_append(self: HistoryLog, entry: dict[str, Any]) -> Path:
            path = append(self, entry)
            _pause(tmp)
            return path

        HistoryLog.append = paused_append  # type: ignore[method-assign]
    elif not point.startswith("op_"):  # op_<n>: see _op_pause
        raise ValueError(point)


def _op_pause(tmp: Path, point: str) -> Any:
    """For ``op_<n>``: the consumer's step hook pausing mid-commit after operation n."""
    if not point.startswith("op_"):
        return None
    index = int(point[3:])

    def on_step(i: int) -> None:
        if i == index and (tmp / "b-started").exists():
            _pause(tmp)

    return on_step


def child_apply(tmp: Path, point: str) -> None:
    """Runs in a subprocess: apply A fully (first run only), then B until ``point``."""
    env = _env(tmp, on_step=_op_pause(tmp, point))
    (a_archive, a), (b_archive, b) = _snapshots(tmp)
    if env.consumer.state.applied_cid() is None:
        env.publish(a_archive, a)
        outcome = env.consumer.tick(NOW)
        assert outcome is not None and outcome.applied, outcome
    env.publish(b_archive, b)
    (tmp / "b-started").write_text("1")
    _install_pause(env, point)
    env.consumer.tick(NOW + 10)
    raise SystemExit(f"the apply of B never reached {point}")


def run_and_kill(tmp: Path, point: str) -> None:
    """Run ``child_apply`` until it pauses at ``point``, then SIGKILL it."""
    (tmp / "paused").unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp), point], cwd="/")
    try:
        deadline = time.monotonic() + 60
        while not (tmp / "paused").exists():
            assert proc.poll() is None, "child exited before pausing"
            assert time.monotonic() < deadline, "child never paused"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


# --- the restarted runner ------------------------------------------------------------


def restarted_env(tmp: Path) -> Env:
    """A new runner process on the same dirs, B being the current record."""
    env = _env(tmp, running=False)
    (a_archive, a), (b_archive, b) = _snapshots(tmp)
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
    env = _env(tmp / "reference")
    (a_archive, a), (b_archive, b) = _snapshots(tmp / "reference")
    env.publish(a_archive, a)
    assert env.consumer.tick(NOW).applied  # type: ignore[union-attr]
    env.publish(b_archive, b)
    assert env.consumer.tick(NOW + 10).applied  # type: ignore[union-attr]
    return tree(env.volume)


def assert_reported_once(env: Env, tmp: Path) -> None:
    """Exactly what the normal path leaves after applying A then B."""
    (_, a), (_, b) = _snapshots(tmp)
    paths = _paths(tmp)
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
    run_and_kill(tmp_path, point)
    env, manager = restart(tmp_path)
    assert env.containers.calls == ["start"]  # no second apply of B, no stop
    manager.tick(0.0)  # the first tick after the start
    assert_reported_once(env, tmp_path)
    assert tree(env.volume) == expected
    latest = HistoryLog(_paths(tmp_path).history_received).entries()[-1].data
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
    run_and_kill(tmp_path, "before_restart")
    (_, a), _ = _snapshots(tmp_path)
    env, manager = restart(tmp_path)
    last = json.loads((_paths(tmp_path).volume_sync_dir / C.LAST_APPLY_FILE).read_text())
    assert last["cid"] == a.cid  # not yet: the app is told once it runs, as after a tick
    manager.tick(0.0)
    assert_reported_once(env, tmp_path)


# --- item 8: a crash is not a verdict on the snapshot -----------------------------------


def test_apply_killed_mid_commit_is_rolled_back_and_retried_at_once(tmp_path: Path) -> None:
    expected = _reference_tree(tmp_path)
    run_and_kill(tmp_path, "op_2")
    assert leftovers(tmp_path / "volume") != []  # the kill left a half-applied volume
    env, manager = restart(tmp_path)  # rolls back, then applies B before the first start
    assert env.containers.calls == ["start"]
    assert tree(env.volume) == expected
    (_, b) = _snapshots(tmp_path)[1]
    assert env.consumer.quarantine.entries() == []
    assert env.consumer.quarantine.interruptions(b.cid, b.manifest.digest()) == 0  # success
    manager.tick(0.0)
    assert_reported_once(env, tmp_path)


def test_repeated_crashes_are_retried_at_once_then_back_off_like_a_failure(
    tmp_path: Path,
) -> None:
    (_, a), (_, b) = _snapshots(tmp_path)
    now = NOW + 100
    for crash in range(1, CRASH_RETRIES + 2):
        run_and_kill(tmp_path, "op_2")
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
