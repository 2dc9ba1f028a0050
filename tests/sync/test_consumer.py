"""SnapshotConsumer orchestration on MemoryBlobStore / MemoryRegistry and fake containers.

Snapshots and records are made by hand with plain tarfile (tests/support/consumer_rig.py), so these
tests are the interop tests too.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from container_apps.errors import ContainerRuntimeError, RegistryUnavailable, StoreUnavailable
from container_apps.registries.memory import MemoryRegistry
from container_apps.sync import constants as C
from container_apps.sync.journal import Journal
from container_apps.sync.preflight import ConsumerLimits
from container_apps.sync.quarantine import backoff_seconds
from container_apps.tests.support.consumer_rig import (
    Env,
    build_snapshot,
    d,
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


@pytest.fixture
def env(tmp_path: Path) -> Env:
    e = make_env(tmp_path)
    seed_old(e.volume)
    return e


def _publish(env: Env, entries=None, name: str = "snap.tar.zst", **kw):
    archive = build_snapshot(
        env.tmp / name, entries or new_entries(), kw.pop("fmt", C.ARCHIVE_FORMAT_ZST)
    )
    record = make_record(archive, **kw)
    env.publish(archive, record)
    return archive, record


# --- the happy path ------------------------------------------------------------------


def test_tick_applies_new_record_with_one_stop_and_one_start(env: Env) -> None:
    _, record = _publish(env)
    outcome = env.consumer.tick(NOW)
    assert outcome is not None and outcome.applied
    assert env.containers.calls == ["stop", "start"]
    assert (env.volume / "replace.txt").read_bytes() == b"new bytes"
    assert env.consumer.state.applied_cid() == record.cid
    assert env.consumer.state.current()["state"] == C.APPLY_STATE_APPLIED
    assert leftovers(env.volume) == []


def test_tick_writes_last_apply_json_0644_with_spec_fields(env: Env) -> None:
    _, record = _publish(env)
    env.consumer.tick(NOW)
    path = env.settings.control_dir / C.LAST_APPLY_FILE
    data = json.loads(path.read_text())
    assert set(data) == {
        "cid",
        "version",
        "source_timestamp",
        "applied_timestamp",
        "node_id",
        "metadata",
    }
    assert data["cid"] == record.cid and data["metadata"] == {"epoch": 1}
    assert os.stat(path).st_mode & 0o777 == 0o644


def test_tick_writes_received_history_with_durations_and_downtime(env: Env) -> None:
    _, record = _publish(env)
    outcome = env.consumer.tick(NOW)
    assert outcome is not None and outcome.history_path
    entry = json.loads(Path(outcome.history_path).read_text())
    assert set(entry) >= RECEIVED_HISTORY_FIELDS, RECEIVED_HISTORY_FIELDS - set(entry)
    assert set(entry["durations"]) == {"download", "prepare", "commit"}
    assert entry["downtime_seconds"] > 0
    assert entry["manifest"] == record.manifest.to_dict()


def test_second_tick_with_same_cid_does_nothing(env: Env) -> None:
    _publish(env)
    env.consumer.tick(NOW)
    assert env.consumer.tick(NOW + 10) is None
    assert env.containers.stops == 1


def test_dedupe_uses_durable_state_not_last_apply_json(env: Env) -> None:
    _, record = _publish(env)
    # The app forges last_apply.json claiming the new CID is already applied.
    (env.settings.control_dir / C.LAST_APPLY_FILE).write_text(json.dumps({"cid": record.cid}))
    outcome = env.consumer.tick(NOW)
    assert outcome is not None and outcome.applied


def test_record_with_lower_version_but_new_cid_is_applied(env: Env) -> None:
    _publish(env, version=2_000_000_000)
    env.consumer.tick(NOW)
    _, second = _publish(env, [*new_entries(), f("app/data/v2", b"2")], "s2.tar.zst", version=5)
    outcome = env.consumer.tick(NOW + 10)
    assert outcome is not None and outcome.applied and outcome.cid == second.cid
    assert (env.volume / "v2").read_bytes() == b"2"


def test_interop_tar_gz_from_plain_tarfile_without_digest_fields_applies(env: Env) -> None:
    archive = build_snapshot(env.tmp / "plain.tar.gz", new_entries(), C.ARCHIVE_FORMAT_GZ)
    record = make_record(archive, fmt=C.ARCHIVE_FORMAT_GZ, with_sha=False)
    assert record.manifest.archive_sha256 is None and record.manifest.members is None
    env.publish(archive, record)
    outcome = env.consumer.tick(NOW)
    assert outcome is not None and outcome.applied
    assert (env.volume / "sub" / "new.bin").read_bytes() == b"\x01new" * 1000


def test_apply_retires_local_copy_of_the_previous_cid(env: Env) -> None:
    _, first = _publish(env)
    env.consumer.tick(NOW)
    assert (env.store.cache_dir / first.cid).exists()
    _publish(env, [*new_entries(), f("app/data/v2", b"2")], "s2.tar.zst")
    env.consumer.tick(NOW + 10)
    assert not (env.store.cache_dir / first.cid).exists()
    assert first.cid in env.store.cids()  # never remote
    entries = sorted(Path(env.settings.history_dir).glob("*.json"))
    old = [
        json.loads(p.read_text()) for p in entries if json.loads(p.read_text())["cid"] == first.cid
    ]
    assert old[0]["deletion"]["deletion_succeeded"] is True


def test_apply_before_first_start_needs_no_stop(tmp_path: Path) -> None:
    env = make_env(tmp_path, running=False)
    _, record = _publish(env)
    assert env.consumer.needs_initial_apply(NOW)
    outcome = env.consumer.apply_before_first_start(NOW)
    assert outcome is not None and outcome.applied
    assert env.containers.calls == []
    assert not env.consumer.needs_initial_apply(NOW + 1)
    assert env.consumer.state.applied_cid() == record.cid


# --- refusals before the stop --------------------------------------------------------


def _assert_refused_before_stop(env: Env, kind: str) -> None:
    outcome = env.consumer.tick(NOW)
    assert outcome is not None and not outcome.applied
    assert outcome.kind == kind, outcome
    assert env.containers.calls == []
    assert env.consumer.state.current()["state"] == C.APPLY_STATE_FAILED_PREFLIGHT
    assert [e.kind for e in env.consumer.quarantine.entries()] == [kind]
    assert leftovers(env.volume) == []
    assert not Journal(env.settings.sync_state_dir).plan_path.exists()


def test_record_from_untrusted_node_is_refused_before_stop(tmp_path: Path) -> None:
    env = make_env(tmp_path, limits=ConsumerLimits(trusted_node_ids=("provider-1",)))
    seed_old(env.volume)
    before = tree(env.volume)
    _publish(env, node_id="intruder")
    _assert_refused_before_stop(env, "validation")
    assert "TRUSTED_NODE_IDS" in env.consumer.quarantine.entries()[0].error
    assert tree(env.volume) == before


def test_record_from_trusted_node_is_applied(tmp_path: Path) -> None:
    env = make_env(tmp_path, limits=ConsumerLimits(trusted_node_ids=("provider-1",)))
    _publish(env)
    outcome = env.consumer.tick(NOW)
    assert outcome is not None and outcome.applied


def test_corrupted_blob_is_refused_before_stop_and_deleted(env: Env) -> None:
    archive, record = _publish(env)
    env.store.corrupt(record.cid, b"garbage" + archive.read_bytes())
    _assert_refused_before_stop(env, "digest")
    assert not (env.store.cache_dir / record.cid).exists()


def test_manifest_digest_mismatch_is_refused_and_copy_deleted(env: Env) -> None:
    _, record = _publish(env, manifest_extra={"archive_sha256": "0" * 64})
    _assert_refused_before_stop(env, "digest")
    assert not (env.store.cache_dir / record.cid).exists()


def test_missing_blob_is_a_download_failure(env: Env) -> None:
    archive = build_snapshot(env.tmp / "s.tar.zst", new_entries())
    record = make_record(archive)
    env.registry.hset(C.CHAINSTORE_HKEY, "test-key", record.to_json())
    _assert_refused_before_stop(env, "download")


def test_invalid_member_is_an_extract_failure(env: Env) -> None:
    _publish(env, [d("app/data"), f("app/data/../../etc/passwd", b"x")])
    _assert_refused_before_stop(env, "extract")


def test_unexpected_error_while_staging_is_quarantined_before_stop(env: Env, mocker) -> None:
    mocker.patch(
        "container_apps.sync.apply.stage_archive", side_effect=ValueError("unforeseen member")
    )
    _publish(env)
    _assert_refused_before_stop(env, "extract")
    assert "unforeseen member" in env.consumer.quarantine.entries()[0].error


def test_tar_bomb_is_refused_before_stop(tmp_path: Path) -> None:
    limits = ConsumerLimits(max_archive_bytes=1 << 20, max_unpacked_bytes=4 << 20)
    env = make_env(tmp_path, limits=limits)
    _publish(env, [d("app/data"), f("app/data/bomb", bytes(64 << 20))])
    assert (env.tmp / "snap.tar.zst").stat().st_size < 64 * 1024
    _assert_refused_before_stop(env, "extract")
    assert "MAX_UNPACKED_BYTES" in env.consumer.quarantine.entries()[0].error


def test_bad_record_reasons_are_all_collected(env: Env) -> None:
    _publish(
        env,
        node_id="n",
        manifest_extra={
            "schema_version": 2,
            "archive_format": "tar.xz",
            "encryption": "rot13",
            "archive_paths": ["/etc/"],
        },
    )
    _assert_refused_before_stop(env, "validation")
    error = env.consumer.quarantine.entries()[0].error
    for part in ("schema_version", "archive_format", "encryption", "archive_paths"):
        assert part in error


def test_malformed_record_is_quarantined_and_logged_once(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    env.registry.hset(C.CHAINSTORE_HKEY, "test-key", '{"cid": 5}')
    with caplog.at_level(logging.WARNING):
        for i in range(5):
            assert env.consumer.tick(NOW + i) is None
    assert sum("malformed" in r.message for r in caplog.records) == 1
    assert env.containers.calls == []


# --- quarantine and backoff ------------------------------------------------------------


def test_failed_record_is_not_retried_within_backoff_and_retried_after(env: Env) -> None:
    _publish(env, manifest_extra={"archive_format": "tar.xz"})
    assert env.consumer.tick(NOW) is not None
    assert env.consumer.tick(NOW + backoff_seconds(1) - 1) is None
    again = env.consumer.tick(NOW + backoff_seconds(1) + 1)
    assert again is not None and not again.applied
    assert env.consumer.quarantine.entries()[0].failures == 2


def test_stop_failure_aborts_before_any_write_and_is_quarantined(env: Env) -> None:
    before = tree(env.volume)
    _publish(env)
    env.containers.fail_stop = ContainerRuntimeError("stop not confirmed")
    outcome = env.consumer.tick(NOW)
    assert outcome is not None and outcome.kind == "stop"
    assert env.containers.calls == ["stop"]
    assert tree(env.volume) == before
    assert env.consumer.tick(NOW + 30) is None  # backoff: no second stop
    assert env.containers.stops == 1


def test_commit_failure_rolls_back_restarts_once_and_backs_off(tmp_path: Path) -> None:
    def on_step(index: int) -> None:
        if index == 3:
            raise OSError(28, "No space left on device")

    env = make_env(tmp_path, on_step=on_step)
    seed_old(env.volume)
    before = tree(env.volume)
    _publish(env)
    outcome = env.consumer.tick(NOW)
    assert outcome is not None and outcome.kind == "commit" and outcome.stopped
    assert env.containers.calls == ["stop", "start"]
    assert tree(env.volume) == before
    assert leftovers(env.volume) == []
    assert env.consumer.state.current()["state"] == C.APPLY_STATE_FAILED_ROLLED_BACK
    for i in range(1, 6):
        assert env.consumer.tick(NOW + i * 10) is None
    assert env.containers.calls == ["stop", "start"]


def test_commit_failure_before_the_first_start_is_recorded_as_rolled_back(
    tmp_path: Path,
) -> None:
    def on_step(index: int) -> None:
        if index == 3:
            raise OSError(28, "No space left on device")

    env = make_env(tmp_path, running=False, on_step=on_step)
    seed_old(env.volume)
    before = tree(env.volume)
    _publish(env)
    outcome = env.consumer.apply_before_first_start(NOW)
    assert outcome is not None and outcome.kind == "commit" and not outcome.stopped
    assert env.containers.calls == []
    assert tree(env.volume) == before
    current = env.consumer.state.load()
    assert (current.state, current.stage) == (C.APPLY_STATE_FAILED_ROLLED_BACK, C.STAGE_COMMIT)


def test_unprovable_rollback_halts_and_keeps_the_container_stopped(tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()

    def on_step(index: int) -> None:
        if index == 5:
            (volume / "fresh" / "intruder").write_bytes(b"?")
            raise OSError(5, "I/O error")

    env = make_env(tmp_path, volume, on_step=on_step)
    seed_old(env.volume)
    _publish(env)
    outcome = env.consumer.tick(NOW)
    assert outcome is not None and outcome.halted
    assert env.containers.calls == ["stop"]
    assert env.consumer.is_halted() and env.consumer.halt_reason()
    assert env.consumer.state.current()["state"] == C.APPLY_STATE_UNCERTAIN
    assert env.consumer.tick(NOW + 7200) is None
    assert env.containers.calls == ["stop"]
    assert env.consumer.clear_halt()
    assert not env.consumer.is_halted()


def test_store_outage_is_not_quarantined_and_logged_once(
    env: Env, caplog: pytest.LogCaptureFixture, mocker
) -> None:
    _, record = _publish(env)
    real_get = env.store.get
    mocker.patch.object(env.store, "get", side_effect=StoreUnavailable("down"))
    with caplog.at_level(logging.WARNING):
        for i in range(3):
            assert env.consumer.tick(NOW + i) is None
    assert sum("unavailable" in r.message for r in caplog.records) == 1
    assert env.consumer.quarantine.entries() == []
    env.store.get = real_get  # type: ignore[method-assign]
    outcome = env.consumer.tick(NOW + 10)
    assert outcome is not None and outcome.applied and outcome.cid == record.cid


class CountingRegistry(MemoryRegistry):
    def __init__(self) -> None:
        super().__init__()
        self.hsyncs: list[float] = []
        self.fail_hsync = False
        self.fail_hget = False
        self.clock = 0.0

    def hsync(self, hkey: str) -> None:
        self.hsyncs.append(self.clock)
        if self.fail_hsync:
            raise RegistryUnavailable("replica refresh failed")

    def hget(self, hkey: str, key: str) -> str | None:
        if self.fail_hget:
            raise RegistryUnavailable("registry down")
        return super().hget(hkey, key)


def test_registry_refresh_runs_at_most_every_hsync_interval(tmp_path: Path) -> None:
    reg = CountingRegistry()
    env = make_env(tmp_path, registry=reg, hsync_interval=60)
    for t in range(0, 200, 10):
        reg.clock = NOW + t
        env.consumer.tick(NOW + t)
    assert [h - NOW for h in reg.hsyncs] == [0, 60, 120, 180]


def test_failed_refresh_is_retried_after_min_30s_and_interval(tmp_path: Path) -> None:
    reg = CountingRegistry()
    reg.fail_hsync = True
    env = make_env(tmp_path, registry=reg, hsync_interval=60)
    for t in range(0, 100, 5):
        reg.clock = NOW + t
        env.consumer.tick(NOW + t)
    assert [h - NOW for h in reg.hsyncs] == [0, 30, 60, 90]


def test_registry_outage_is_logged_once_per_state_change(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reg = CountingRegistry()
    env = make_env(tmp_path, registry=reg)
    reg.fail_hget = True
    with caplog.at_level(logging.INFO):
        for i in range(5):
            env.consumer.tick(NOW + i)
        reg.fail_hget = False
        for i in range(5, 8):
            env.consumer.tick(NOW + i)
    messages = [r.message for r in caplog.records if "registry" in r.message]
    assert sum("unavailable" in m for m in messages) == 1
    assert sum("reachable again" in m for m in messages) == 1


# --- start-up recovery ----------------------------------------------------------------


def test_recover_rolls_back_an_unfinished_journal_and_counts_a_crash(tmp_path: Path) -> None:
    class Crash(BaseException):
        pass

    def on_step(index: int) -> None:
        if index == 3:
            raise Crash  # not an Exception: simulates the process dying mid-commit

    env = make_env(tmp_path, on_step=on_step)
    seed_old(env.volume)
    before = tree(env.volume)
    _, record = _publish(env)
    with pytest.raises(Crash):
        env.consumer.tick(NOW)
    assert leftovers(env.volume) != []
    fresh = make_env(tmp_path / "restart", env.volume)
    fresh_consumer = type(env.consumer)(
        env.settings,
        fresh.consumer._source,
        env.store,
        fresh.containers,
        env.resolver,
        logging.getLogger("t"),
    )
    fresh_consumer.recover(NOW + 1)
    assert tree(env.volume) == before
    assert leftovers(env.volume) == []
    assert fresh_consumer.state.current()["state"] == C.APPLY_STATE_FAILED_ROLLED_BACK
    # A crash, not a verdict on the snapshot: counted, not quarantined (retried at once).
    assert fresh_consumer.quarantine.entries() == []
    assert fresh_consumer.quarantine.interruptions(record.cid, record.manifest.digest()) == 1
    assert fresh.containers.calls == []


def test_recover_halts_when_journal_is_unreadable(env: Env) -> None:
    state_dir = env.settings.sync_state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / C.JOURNAL_FILE).write_text("{not json")
    env.consumer.recover(NOW)
    assert env.consumer.is_halted()
    assert env.consumer.tick(NOW) is None


def test_recover_after_a_retried_halt_rolls_back_without_quarantine(tmp_path: Path) -> None:
    # The halt left the journal behind with state "uncertain"; the operator fixed the
    # cause and ran `car sync retry`: the rollback must not put the CID back in quarantine.
    class Crash(BaseException):
        pass

    def on_step(index: int) -> None:
        if index == 3:
            raise Crash

    env = make_env(tmp_path, on_step=on_step)
    seed_old(env.volume)
    before = tree(env.volume)
    _, record = _publish(env)
    with pytest.raises(Crash):
        env.consumer.tick(NOW)
    env.consumer.state.set_state(
        C.APPLY_STATE_UNCERTAIN, cid=record.cid, version=record.version, now=NOW, error="halt"
    )
    env.consumer.recover(NOW + 1)
    assert tree(env.volume) == before
    assert leftovers(env.volume) == []
    assert env.consumer.quarantine.entries() == []
