"""Signed records between a real publisher and a real consumer (memory backends, fake containers).

A provider with a signing key publishes records a consumer with ``TRUSTED_KEYS`` applies,
in every snapshot format; a record forged by someone who can write the store and the
registry but holds no trusted key is refused before anything is downloaded, quarantined,
and the app is never stopped.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from container_apps.registries.memory import MemoryRegistry
from container_apps.stores.memory import MemoryBlobStore
from container_apps.sync import constants as C
from container_apps.sync import quarantine as Q
from container_apps.sync.consumer import ConsumerSettings, SnapshotConsumer
from container_apps.sync.paths import PathResolver
from container_apps.sync.record_source import RecordSource
from container_apps.sync.records import parse_record
from container_apps.sync.signing import RecordSigner, RecordVerifier
from container_apps.tests.support.consumer_rig import build_snapshot, make_record, new_entries
from container_apps.tests.support.fakes import FakeContainers
from container_apps.tests.support.faults import FaultyBlobStore
from container_apps.tests.support.provider_rig import NOW, Rig, make_rig
from container_apps.tests.support.signing_keys import fixed_signer
from container_apps.volumes.binding import VolumeBinding

LOG = logging.getLogger("test.signed")
KEY = "key-1"  # the provider rig's sync key
PROVIDER = fixed_signer(1)
FORGER = fixed_signer(66)


class Consumer:
    """A consumer of KEY with its own volume, counting what it fetches from the store."""

    def __init__(self, tmp: Path, store: Any, registry: Any, trusted: list[str] | None) -> None:
        self.data = tmp / "c-data"
        self.data.mkdir()
        (self.data / "mine.txt").write_text("before")
        settings = ConsumerSettings(
            tmp / "c-state",
            tmp / "c-control",
            tmp / "c-hist",
            verifier=RecordVerifier(trusted, KEY) if trusted is not None else None,
        )
        settings.control_dir.mkdir()
        self.store = FaultyBlobStore(store)
        self.containers = FakeContainers()
        resolver = PathResolver([VolumeBinding("data", "fixed", self.data, "/app/data")])
        source = RecordSource(registry, KEY, 60.0, LOG)
        self.consumer = SnapshotConsumer(
            settings, source, self.store, self.containers, resolver, LOG
        )

    def fetches(self) -> int:
        return self.store.count("get") + self.store.count("get_range")


def _publish(tmp: Path, fmt: str, signer: RecordSigner | None) -> tuple[Rig, Any, Any]:
    store = MemoryBlobStore(tmp / "blobs")
    registry = MemoryRegistry()
    data = tmp / "p-data"
    data.mkdir()
    (data / "a.txt").write_text("alpha")
    rig = make_rig(
        tmp, store=store, registry=registry, data=data, archive_format=fmt, signer=signer
    )
    rig.request({"archive_paths": ["/app/data"], "metadata": {"epoch": 1}})
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.status == "ok", rig.response()
    return rig, store, registry


@pytest.mark.parametrize(
    "fmt", [C.ARCHIVE_FORMAT_CHUNKED, C.ARCHIVE_FORMAT_ZST, C.ARCHIVE_FORMAT_GZ]
)
def test_signed_publish_is_applied_by_a_consumer_that_trusts_the_key(
    tmp_path: Path, fmt: str
) -> None:
    _, store, registry = _publish(tmp_path, fmt, PROVIDER)
    raw = json.loads(registry.hget(C.CHAINSTORE_HKEY, KEY))
    assert raw["signature"]["public_key"] == PROVIDER.public_key
    assert raw["signature"]["sync_key"] == KEY and raw["manifest"]["archive_format"] == fmt
    c = Consumer(tmp_path, store, registry, [FORGER.public_key, PROVIDER.public_key])
    outcome = c.consumer.tick(NOW + 5)
    assert outcome is not None and outcome.applied, outcome
    assert (c.data / "a.txt").read_text() == "alpha"


def test_signature_adds_one_field_and_changes_none_the_older_reader_uses(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "u").mkdir()
    signed_registry = _publish(tmp_path / "s", C.ARCHIVE_FORMAT_GZ, PROVIDER)[2]
    unsigned_registry = _publish(tmp_path / "u", C.ARCHIVE_FORMAT_GZ, None)[2]
    signed = json.loads(signed_registry.hget(C.CHAINSTORE_HKEY, KEY))
    unsigned = json.loads(unsigned_registry.hget(C.CHAINSTORE_HKEY, KEY))
    assert set(signed) - set(unsigned) == {"signature"}
    assert signed["manifest"]["encryption"] == "r1fs-default"  # what the older runner requires
    assert set(signed["manifest"]) == set(unsigned["manifest"])


def test_consumer_without_trusted_keys_applies_signed_and_unsigned_records(tmp_path: Path) -> None:
    _, store, registry = _publish(tmp_path, C.ARCHIVE_FORMAT_ZST, PROVIDER)
    c = Consumer(tmp_path, store, registry, None)
    outcome = c.consumer.tick(NOW + 5)
    assert outcome is not None and outcome.applied


def _forge(tmp: Path, store: Any, registry: Any, signer: RecordSigner | None, key: str) -> str:
    """As an attacker with write access to store and registry: upload, then write a record."""
    archive = build_snapshot(tmp / "evil.tar.zst", new_entries())
    record = make_record(archive, node_id="node-a")  # claims the provider's node id
    assert store.put(archive) == record.cid
    if signer is not None:
        record = signer.sign(key, record)
    registry.hset(C.CHAINSTORE_HKEY, KEY, record.to_json())
    return record.cid


@pytest.mark.parametrize(
    ("forger", "signed_for", "words"),
    [
        (None, KEY, "unsigned"),
        (FORGER, KEY, "not in SYNC.TRUSTED_KEYS"),
        (PROVIDER, "key-2", "signed for sync key 'key-2'"),
    ],
    ids=["unsigned", "untrusted-key", "replayed-from-another-key"],
)
def test_forged_record_is_refused_before_any_download_and_quarantined(
    tmp_path: Path, forger: RecordSigner | None, signed_for: str, words: str
) -> None:
    _, store, registry = _publish(tmp_path, C.ARCHIVE_FORMAT_ZST, PROVIDER)
    c = Consumer(tmp_path, store, registry, [PROVIDER.public_key])
    assert c.consumer.tick(NOW + 5).applied  # type: ignore[union-attr]
    before = {p.name: p.read_bytes() for p in c.data.iterdir()}
    calls_before, fetches_before = list(c.containers.calls), c.fetches()

    cid = _forge(tmp_path, store, registry, forger, signed_for)
    outcome = c.consumer.tick(NOW + 10)
    assert outcome is not None and not outcome.applied and outcome.kind == Q.KIND_VALIDATION
    assert words in (outcome.error or "")
    assert c.fetches() == fetches_before  # nothing downloaded for it
    assert c.containers.calls == calls_before  # the app was never stopped
    assert {p.name: p.read_bytes() for p in c.data.iterdir()} == before
    [entry] = c.consumer.quarantine.entries()
    assert entry.cid == cid and words in entry.error
    assert c.consumer.tick(NOW + 20) is None  # waits out its backoff, not retried each tick


def test_record_altered_in_the_registry_is_refused(tmp_path: Path) -> None:
    _, store, registry = _publish(tmp_path, C.ARCHIVE_FORMAT_ZST, PROVIDER)
    raw = json.loads(registry.hget(C.CHAINSTORE_HKEY, KEY))
    raw["manifest"]["archive_paths"] = ["/app"]  # widen what the apply may touch
    registry.hset(C.CHAINSTORE_HKEY, KEY, json.dumps(raw))
    c = Consumer(tmp_path, store, registry, [PROVIDER.public_key])
    outcome = c.consumer.tick(NOW + 5)
    assert outcome is not None and not outcome.applied
    assert "does not match" in (outcome.error or "") and c.fetches() == 0
    assert parse_record(json.dumps(raw)).signature is not None
