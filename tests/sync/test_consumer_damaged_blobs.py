"""The consumer against damaged blobs and garbage: it refuses, quarantines, and deletes
only what is its own (issue 9 items 6 and 7).

A consumer shares the embedded ``file://`` store with every runner on the host, so a
digest mismatch (one bad read, or an untrusted record naming another sync set's blob with
a wrong digest) must quarantine the snapshot on this consumer and leave the blob alone:
its provider heals it by putting it again.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest
from container_apps.stores.local import FileBlobStore
from container_apps.sync import constants as C
from container_apps.sync.quarantine import KIND_DIGEST, backoff_seconds
from container_apps.tests.support.consumer_rig import (
    KEY,
    Env,
    build_snapshot,
    make_env,
    make_record,
    new_entries,
    seed_old,
    tree,
)
from container_apps.tests.support.hostile_records import GOOD_CID, HOSTILE

NOW = 1_764_400_000.0


def _file_env(tmp_path: Path) -> Env:
    store = FileBlobStore.from_url(f"file://{tmp_path}/blobs", cache_dir=tmp_path / "cache")
    env = make_env(tmp_path, store=store)
    seed_old(env.volume)
    return env


def test_corrupt_shared_blob_is_quarantined_here_and_kept_for_every_runner(
    tmp_path: Path,
) -> None:
    env = _file_env(tmp_path)
    archive = build_snapshot(tmp_path / "snap.tar.zst", new_entries())
    record = make_record(archive)
    env.publish(archive, record)
    blob = tmp_path / "blobs" / record.cid
    damaged = b"glitch" + archive.read_bytes()[6:]  # same size: the digest decides
    blob.write_bytes(damaged)
    before = tree(env.volume)

    outcome = env.consumer.tick(NOW)

    assert outcome is not None and not outcome.applied and outcome.kind == KIND_DIGEST
    assert env.containers.calls == []  # refused before the stop
    assert tree(env.volume) == before
    assert blob.read_bytes() == damaged  # not deleted for the other runners
    [entry] = env.consumer.quarantine.entries()
    assert (entry.cid, entry.kind) == (record.cid, KIND_DIGEST)

    # The provider heals the blob by putting the archive again; after the backoff the
    # quarantined snapshot is tried again and applies.
    assert env.store.put(archive) == record.cid
    healed = env.consumer.tick(NOW + backoff_seconds(1) + 1)
    assert healed is not None and healed.applied
    assert (env.volume / "replace.txt").read_bytes() == b"new bytes"


def test_record_with_wrong_digest_for_a_foreign_blob_deletes_nothing_shared(
    tmp_path: Path,
) -> None:
    env = _file_env(tmp_path)
    archive = build_snapshot(tmp_path / "snap.tar.zst", new_entries())
    # Another sync set's blob, stored under a foreign (non-CID) id by another tool.
    other = tmp_path / "blobs" / "other-set-archive.tar.zst"
    other.write_bytes(archive.read_bytes())
    record = make_record(
        archive,
        record_extra={"cid": "other-set-archive.tar.zst"},
        manifest_extra={"archive_sha256": "0" * 64},
    )
    env.registry.hset(C.CHAINSTORE_HKEY, KEY, record.to_json())

    outcome = env.consumer.tick(NOW)

    assert outcome is not None and outcome.kind == KIND_DIGEST
    assert other.read_bytes() == archive.read_bytes()


# --- records that used to crash the parser (item 13) ------------------------------------


@pytest.mark.parametrize("value", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_record_is_quarantined_by_key_and_cid_and_logged_once(
    tmp_path: Path, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    env = make_env(tmp_path)
    env.registry.hset(C.CHAINSTORE_HKEY, KEY, value)
    assert not env.consumer.needs_initial_apply(NOW)  # the start goes on: the app starts
    with caplog.at_level(logging.WARNING):
        for i in range(5):
            assert env.consumer.tick(NOW + i) is None
    assert env.containers.calls == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert repr(KEY) in warnings[0] and GOOD_CID in warnings[0]
    [entry] = env.consumer.quarantine.entries()
    assert entry.cid == GOOD_CID
    assert entry.manifest_digest == hashlib.sha256(value.encode()).hexdigest()
    assert repr(KEY) in entry.error and GOOD_CID in entry.error


def test_record_without_a_readable_cid_is_named_by_its_key_and_value_sha256(
    tmp_path: Path,
) -> None:
    env = make_env(tmp_path)
    value = '{"version": ' + "[" * 5000 + "}"
    env.registry.hset(C.CHAINSTORE_HKEY, KEY, value)
    assert env.consumer.tick(NOW) is None
    [entry] = env.consumer.quarantine.entries()
    digest = hashlib.sha256(value.encode()).hexdigest()
    assert (entry.cid, entry.manifest_digest) == ("", digest)
    # What `car sync status` prints for the entry: which key, and which value.
    assert repr(KEY) in entry.error and digest[:16] in entry.error
    assert "nested deeper than 64 levels" in entry.error
