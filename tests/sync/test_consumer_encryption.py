"""The consumer and the record's ``encryption`` (README, "Encryption at rest"): what it
cannot decrypt is refused before the stop and quarantined, the volume untouched; older
runners' plaintext records apply as before."""

from __future__ import annotations

from pathlib import Path

import pytest
from container_apps.sync import constants as C
from container_apps.sync.crypto.framing import Sealer
from container_apps.sync.crypto.keys import derive_keys
from container_apps.sync.quarantine import KIND_VALIDATION
from container_apps.tests.support.consumer_rig import (
    Env,
    build_snapshot,
    make_env,
    make_record,
    new_entries,
    seed_old,
    tree,
)

NOW = 1_764_500_000.0
SEALER = Sealer(derive_keys(b"r" * 32))


def _env(tmp_path: Path, sealer: Sealer | None) -> Env:
    env = make_env(tmp_path, sealer=sealer)
    seed_old(env.volume)
    return env


def _publish_sealed(env: Env, tmp_path: Path, encryption: str = C.ENCRYPTION_SEALED) -> str:
    archive = build_snapshot(tmp_path / "snap.tar.zst", new_entries())
    SEALER.seal_in_place(archive)
    record = make_record(archive, manifest_extra={"encryption": encryption})
    env.publish(archive, record)
    return record.cid


def test_an_encrypted_snapshot_applies_with_the_sync_set_key(tmp_path: Path) -> None:
    env = _env(tmp_path, SEALER)
    _publish_sealed(env, tmp_path)
    outcome = env.consumer.tick(NOW)
    assert outcome is not None and outcome.applied
    assert (env.volume / "replace.txt").read_bytes() == b"new bytes"


@pytest.mark.parametrize(
    ("sealer", "encryption", "kind", "says"),
    [
        (None, C.ENCRYPTION_SEALED, KIND_VALIDATION, "has no SYNC.ENCRYPTION_KEY_FILE"),
        (SEALER, "rot13-v9", KIND_VALIDATION, "unknown encryption 'rot13-v9'"),
        (
            Sealer(derive_keys(b"w" * 32)),
            C.ENCRYPTION_SEALED,
            KIND_VALIDATION,
            "cannot decrypt archive: wrong ENCRYPTION_KEY_FILE?",
        ),
    ],
    ids=["no key", "unknown value", "wrong key"],
)
def test_what_cannot_be_decrypted_is_refused_before_the_stop(
    tmp_path: Path, sealer: Sealer | None, encryption: str, kind: str, says: str
) -> None:
    env = _env(tmp_path, sealer)
    before = tree(env.volume)
    cid = _publish_sealed(env, tmp_path, encryption)
    outcome = env.consumer.tick(NOW)
    assert outcome is not None and not outcome.applied and outcome.kind == kind
    assert env.containers.calls == []  # the app was never stopped
    assert tree(env.volume) == before
    [entry] = env.consumer.quarantine.entries()
    assert entry.cid == cid and says in entry.error
    assert env.consumer.tick(NOW + 1) is None  # quarantined: not tried again at once


def test_an_older_runners_plaintext_record_still_applies_with_a_key_set(tmp_path: Path) -> None:
    env = _env(tmp_path, SEALER)
    archive = build_snapshot(tmp_path / "snap.tar.zst", new_entries())
    env.publish(archive, make_record(archive))  # "encryption": "r1fs-default"
    outcome = env.consumer.tick(NOW)
    assert outcome is not None and outcome.applied
