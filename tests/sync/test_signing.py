"""Signed records: the canonical payload, signing and every way a consumer refuses a record."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from container_apps.sync.records import RecordInvalid, RecordSignature, SyncRecord, parse_record
from container_apps.sync.signing import (
    RecordUnverified,
    RecordVerifier,
    parse_public_key,
    signed_payload,
)
from container_apps.tests.support.signing_keys import fixed_signer

DOC = Path(__file__).resolve().parents[2] / "docs" / "FORMAT.md"
KEY = "app-a"


def _record(**changes: Any) -> SyncRecord:
    raw: dict[str, Any] = {
        "cid": "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
        "version": 1764300000,
        "timestamp": 1764300000.12,
        "node_id": "node-a",
        "metadata": {"epoch": 1, "name": "caf\u00e9 \u2603", "ratio": 0.1, "big": 2**62},
        "runtime": {"provider_capture": "offline", "consumer_apply": "offline_restart"},
        "manifest": {
            "schema_version": 1,
            "archive_paths": ["/app/data"],
            "archive_format": "tar.zst",
            "archive_size_bytes": 123456,
            "encryption": "r1fs-default",
            "archive_sha256": "e3" * 32,
            "unpacked_bytes": 456789,
            "members": 78,
        },
    }
    raw.update(changes)
    return parse_record(json.dumps(raw))


def _wire(record: SyncRecord) -> SyncRecord:
    """The record as a consumer gets it: through the registry's JSON text."""
    return parse_record(record.to_json())


def test_payload_is_sorted_compact_ascii_json_of_purpose_key_and_record_without_signature() -> None:
    record = fixed_signer(1).sign(KEY, _record())
    payload = signed_payload(KEY, record)
    text = payload.decode("ascii")  # non-ASCII is escaped
    assert "\\u00e9" in text and " " not in text.replace("caf\\u00e9 \\u2603", "")
    decoded = json.loads(text)
    assert list(decoded) == ["purpose", "record", "sync_key"]
    assert decoded["purpose"] == "car-sync-record-v1" and decoded["sync_key"] == KEY
    assert "signature" not in decoded["record"]
    assert decoded["record"] == replace(record, signature=None).to_dict()
    assert text == json.dumps(decoded, sort_keys=True, separators=(",", ":"))


def test_payload_is_the_same_after_the_registry_round_trip() -> None:
    record = fixed_signer(1).sign(KEY, _record())
    assert signed_payload(KEY, _wire(record)) == signed_payload(KEY, record)


def test_payload_ignores_fields_the_reader_does_not_know_and_binds_the_sync_key() -> None:
    record = _record()
    with_extra = _record(future_field={"x": 1})
    assert signed_payload(KEY, with_extra) == signed_payload(KEY, record)
    assert signed_payload("other-key", record) != signed_payload(KEY, record)


def test_signed_record_verifies_after_the_round_trip() -> None:
    signer = fixed_signer(1)
    wired = _wire(signer.sign(KEY, _record()))
    assert wired.signature is not None and wired.signature.public_key == signer.public_key
    RecordVerifier([signer.public_key, fixed_signer(2).public_key], KEY).verify(wired)


def test_unsigned_record_is_refused() -> None:
    with pytest.raises(RecordUnverified) as caught:
        RecordVerifier([fixed_signer(1).public_key], KEY).verify(_record())
    assert "unsigned" in str(caught.value) and caught.value.stage == "validation"


def test_record_signed_by_an_untrusted_key_is_refused_naming_the_key() -> None:
    intruder = fixed_signer(9)
    record = _wire(intruder.sign(KEY, _record()))
    with pytest.raises(RecordUnverified) as caught:
        RecordVerifier([fixed_signer(1).public_key], KEY).verify(record)
    assert intruder.public_key in str(caught.value) and "TRUSTED_KEYS" in str(caught.value)


def test_valid_record_replayed_under_another_sync_key_is_refused() -> None:
    signer = fixed_signer(1)
    record = _wire(signer.sign("key-b", _record()))
    verifier = RecordVerifier([signer.public_key], KEY)
    with pytest.raises(RecordUnverified) as caught:
        verifier.verify(record)
    assert "'key-b'" in str(caught.value) and "another key" in str(caught.value)
    # Also when the replayer rewrites the signature's own sync_key to match.
    assert record.signature is not None
    relabelled = replace(record, signature=replace(record.signature, sync_key=KEY))
    with pytest.raises(RecordUnverified) as caught:
        verifier.verify(_wire(relabelled))
    assert "does not match" in str(caught.value)


@pytest.mark.parametrize(
    "change",
    [
        {"cid": "bafkreian373krzeob7r7m3v6uxc2b6n3ycslhzl7xux3mtgy3z54uky2yq"},
        {"version": 1764300001},
        {"timestamp": 1764300000.13},
        {"node_id": "node-b"},
        {"metadata": {"epoch": 2}},
        {"runtime": {}},
        {"manifest.archive_sha256": "e4" * 32},
        {"manifest.archive_format": "tar.gz"},
        {"manifest.encryption": "none"},
        {"manifest.archive_paths": ["/app/other"]},
        {"manifest.archive_size_bytes": 1},
        {"manifest.members": 79},
        {"manifest.unpacked_bytes": None},
        {"manifest.schema_version": 2},
    ],
    ids=lambda c: next(iter(c)),
)
def test_any_field_altered_after_signing_is_refused(change: dict[str, Any]) -> None:
    signer = fixed_signer(1)
    raw = json.loads(signer.sign(KEY, _record()).to_json())
    (name, value) = next(iter(change.items()))
    target = raw["manifest"] if name.startswith("manifest.") else raw
    field = name.removeprefix("manifest.")
    if value is None:
        del target[field]
    else:
        target[field] = value
    with pytest.raises(RecordUnverified) as caught:
        RecordVerifier([signer.public_key], KEY).verify(parse_record(json.dumps(raw)))
    assert "does not match" in str(caught.value)


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("alg", "rsa", "signature.alg"),
        ("sig", "not base64!", "not valid base64"),
        ("sig", base64.b64encode(b"x" * 10).decode(), "10 bytes"),
    ],
)
def test_a_malformed_signature_is_refused_with_its_reason(
    field: str, value: str, words: str
) -> None:
    signer = fixed_signer(1)
    record = signer.sign(KEY, _record())
    assert record.signature is not None
    bad = replace(record, signature=replace(record.signature, **{field: value}))
    with pytest.raises(RecordUnverified) as caught:
        RecordVerifier([signer.public_key], KEY).verify(_wire(bad))
    assert words in str(caught.value)


@pytest.mark.parametrize(
    "signature",
    ["yes", {"alg": "ed25519"}, {"alg": 1, "public_key": "k", "sync_key": "k", "sig": "s"}],
)
def test_a_structurally_bad_signature_field_makes_the_record_invalid(signature: Any) -> None:
    raw = json.loads(_record().to_json())
    raw["signature"] = signature
    with pytest.raises(RecordInvalid) as caught:
        parse_record(json.dumps(raw))
    assert "signature" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("ed25519:AAAA", "must start with"),
        ("car-ed25519:***", "not valid base64"),
        ("car-ed25519:" + base64.b64encode(b"x" * 31).decode(), "31 bytes"),
    ],
)
def test_public_key_text_is_checked(text: str, words: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_public_key(text)
    assert words in str(caught.value)


def test_the_signed_example_in_format_md_verifies() -> None:
    """docs/FORMAT.md, "Signed records": the example signature is over the first record."""
    doc = DOC.read_text()
    first = re.search(r"```json record\n(.*?)```", doc, re.S)
    block = re.search(r'```json\n"signature": (\{.*?\})\n```', doc, re.S)
    assert first is not None and block is not None
    sig = json.loads(block.group(1))
    record = parse_record(first.group(1))
    signed = replace(record, signature=RecordSignature(**sig))
    RecordVerifier([sig["public_key"]], sig["sync_key"]).verify(_wire(signed))
