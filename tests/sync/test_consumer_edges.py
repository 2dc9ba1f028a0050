"""Consumer rules not covered elsewhere: app-planted last_apply.json, quarantine key,
current_apply.json states during an apply, and the retry of a failed local retirement.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from container_apps.errors import StoreUnavailable
from container_apps.sync import constants as C
from container_apps.sync.consumer import SnapshotConsumer
from container_apps.sync.history import HistoryLog
from container_apps.sync.record_source import RecordSource
from container_apps.tests.support.consumer_rig import (
    KEY,
    Env,
    build_snapshot,
    f,
    make_env,
    make_record,
    new_entries,
)
from container_apps.tests.support.faults import FaultyBlobStore
from container_apps.tests.support.strict_json import loads_strict

NOW = 1_764_400_000.0
LOG = logging.getLogger("test.consumer_edges")


def _publish(env: Env, name: str = "s.tar.zst", extra: bytes = b"", **kw):
    entries = [*new_entries(), f("app/data/extra", extra)] if extra else new_entries()
    archive = build_snapshot(env.tmp / name, entries)
    record = make_record(archive, **kw)
    env.publish(archive, record)
    return record


def test_app_symlinked_last_apply_json_is_replaced_not_written_through(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    victim = tmp_path / "runner-owned.json"
    victim.write_text("precious")
    os.symlink(victim, env.settings.control_dir / C.LAST_APPLY_FILE)
    record = _publish(env)
    outcome = env.consumer.tick(NOW)
    assert outcome is not None and outcome.applied
    assert victim.read_text() == "precious"
    last = env.settings.control_dir / C.LAST_APPLY_FILE
    assert not last.is_symlink() and json.loads(last.read_text())["cid"] == record.cid


def test_app_directory_in_place_of_last_apply_json_does_not_fail_the_apply(
    tmp_path: Path,
) -> None:
    env = make_env(tmp_path)
    (env.settings.control_dir / C.LAST_APPLY_FILE).mkdir()
    record = _publish(env)
    outcome = env.consumer.tick(NOW)
    assert outcome is not None and outcome.applied
    assert env.consumer.state.applied_cid() == record.cid
    assert env.consumer.tick(NOW + 10) is None  # deduped on the durable state


def test_same_cid_republished_with_another_manifest_gets_a_fresh_chance(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    bad = _publish(env, manifest_extra={"encryption": "rot13"})
    first = env.consumer.tick(NOW)
    assert first is not None and not first.applied
    good = _publish(env)
    assert good.cid == bad.cid and good.manifest.digest() != bad.manifest.digest()
    outcome = env.consumer.tick(NOW + 1)  # well inside the 60 s backoff of the bad one
    assert outcome is not None and outcome.applied


class _SpyStore(FaultyBlobStore):
    """Notes the consumer's apply state each time the blob is fetched."""

    def __init__(self, inner: Any, env: Env, seen: dict[str, str], faults: Any = None) -> None:
        super().__init__(inner, faults)
        self._env, self._seen = env, seen

    def get(self, cid: str, **kw: Any) -> Path:
        self._seen["download"] = _state(self._env)
        return super().get(cid, **kw)


def _state(env: Env) -> str:
    return str((env.consumer.state.current() or {}).get("state"))


def _with_store(env: Env, store: Any) -> None:
    """Rewire ``env.consumer`` onto ``store`` (same state dirs, registry and containers)."""
    source = RecordSource(env.registry, KEY, 60.0, LOG)
    env.consumer = SnapshotConsumer(
        env.settings,
        source,
        store,
        env.containers,
        env.resolver,
        LOG,
        on_step=env.extra.get("on_step"),
    )


def test_current_apply_is_preparing_during_download_and_applying_during_commit(
    tmp_path: Path,
) -> None:
    seen: dict[str, str] = {}
    env = make_env(tmp_path)
    env.extra["on_step"] = lambda index: seen.setdefault("commit", _state(env))
    _with_store(env, _SpyStore(env.store, env, seen))
    _publish(env)
    outcome = env.consumer.tick(NOW)
    assert outcome is not None and outcome.applied
    assert seen == {"download": C.APPLY_STATE_PREPARING, "commit": C.APPLY_STATE_APPLYING}
    assert _state(env) == C.APPLY_STATE_APPLIED


def _deletions(env: Env) -> dict[str, dict[str, Any]]:
    return {e.cid: e.data["deletion"] for e in HistoryLog(env.settings.history_dir).entries()}


def test_failed_local_retirement_is_retried_at_the_next_apply(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    flaky = FaultyBlobStore(env.store, {"delete": [StoreUnavailable("busy")]})
    _with_store(env, flaky)
    first = _publish(env)
    assert env.consumer.tick(NOW).applied  # type: ignore[union-attr]
    _publish(env, "s2.tar.zst", extra=b"2")
    assert env.consumer.tick(NOW + 10).applied  # type: ignore[union-attr]
    assert _deletions(env)[first.cid]["deletion_succeeded"] is False
    assert (env.store.cache_dir / first.cid).exists()
    _publish(env, "s3.tar.zst", extra=b"3")
    assert env.consumer.tick(NOW + 20).applied  # type: ignore[union-attr]
    assert _deletions(env)[first.cid]["deletion_succeeded"] is True
    assert not (env.store.cache_dir / first.cid).exists()
    assert first.cid in env.store.cids()  # never remote
    assert [args[1] for op, args in flaky.calls if op == "delete"] == [False] * 3
    flaky.assert_all_faults_fired()


def test_record_understating_its_size_cannot_make_the_download_fill_the_disk(
    tmp_path: Path,
) -> None:
    # README, "Safety rules": the record says 251 bytes; the blob under its CID is 4 MiB. The
    # store must refuse before writing it into this node's cache, and the app is never stopped.
    env = make_env(tmp_path)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(4 * 1024 * 1024))
    cid = env.store.put(big)
    record = make_record(big, record_extra={"cid": cid}, manifest_extra={"archive_size_bytes": 251})
    env.registry.hset(C.CHAINSTORE_HKEY, KEY, record.to_json())
    outcome = env.consumer.tick(NOW)
    assert outcome is not None and not outcome.applied and not outcome.stopped
    assert outcome.kind == "digest"
    assert not (env.store.cache_dir / cid).exists()
    assert list(env.store.cache_dir.iterdir()) == []
    assert env.containers.calls == []
    [entry] = env.consumer.quarantine.entries()
    assert entry.stage == C.STAGE_R1FS_DOWNLOAD and "251" in entry.error


def test_record_metadata_with_a_lone_surrogate_is_still_reported(tmp_path: Path) -> None:
    # json.loads accepts "\udcff"; such a str has no UTF-8 form, and the JSON writer used
    # to fail on it, so last_apply.json and the history never named the applied CID.
    env = make_env(tmp_path)
    archive = build_snapshot(tmp_path / "s.tar.zst", new_entries())
    record = make_record(archive)
    raw = record.to_json().replace('"metadata":{"epoch":1}', r'"metadata":{"k":"a\udcff"}')
    env.publish_raw(archive, raw)
    outcome = env.consumer.tick(NOW)
    assert outcome is not None and outcome.applied
    last = loads_strict((env.settings.control_dir / C.LAST_APPLY_FILE).read_bytes())
    assert last["cid"] == record.cid and last["metadata"] == {"k": "a\ufffd"}
    [entry] = HistoryLog(env.settings.history_dir).entries()
    assert entry.cid == record.cid
    assert loads_strict(entry.path.read_bytes())["metadata"] == {"k": "a\ufffd"}
