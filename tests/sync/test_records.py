"""parse_record on hostile registry values: every problem is a SnapshotInvalid (issue 9 item 13).

Whoever can write the registry can write any bytes under a sync key. Before these bounds,
a 5,000-digit integer raised ValueError, a 400-digit timestamp OverflowError and
metadata nested 100k levels RecursionError, none of which the consumer caught. Each
case here must come back as ``SnapshotInvalid`` naming the field, with the record's CID
when one can be read.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from container_apps.errors import SnapshotInvalid
from container_apps.sync import constants as C
from container_apps.sync.records import RecordInvalid, parse_record
from hypothesis import given, settings
from hypothesis import strategies as st

CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def _record(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "cid": CID,
        "version": 1_764_300_000,
        "timestamp": 1_764_300_000.12,
        "node_id": "node-a",
        "metadata": {"epoch": 1},
        "runtime": {"provider_capture": "offline", "consumer_apply": "offline_restart"},
        "manifest": {
            "schema_version": 1,
            "archive_paths": ["/app/data"],
            "archive_format": "tar.zst",
            "archive_size_bytes": 123,
            "encryption": "none",
            "runtime": {},
        },
    }
    manifest = changes.pop("manifest", {})
    record.update(changes)
    record["manifest"].update(manifest)
    return record


def _nested(levels: int, leaf: str = "1") -> str:
    return "[" * levels + leaf + "]" * levels


def _refused(text: str | bytes) -> RecordInvalid:
    with pytest.raises(SnapshotInvalid) as info:
        parse_record(text)
    assert isinstance(info.value, RecordInvalid)
    return info.value


def _with_raw(field: str, raw: str, where: dict[str, Any] | None = None) -> str:
    """The record JSON with ``field`` holding ``raw`` verbatim (no Python value could)."""
    record = _record()
    target = record if where is None else record["manifest"]
    target[field] = "@@RAW@@"
    return json.dumps(record).replace('"@@RAW@@"', raw)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (_with_raw("version", "9" * 5000), "more than 64 digits"),
        (_with_raw("timestamp", "9" * 400), "more than 64 digits"),
        (_with_raw("timestamp", "9" * 400 + ".5"), "finite"),
        (_with_raw("timestamp", "1e400"), "finite"),
        (_with_raw("timestamp", "NaN"), "NaN"),
        (_with_raw("metadata", '{"a": -Infinity}'), "Infinity"),
        (_with_raw("metadata", _nested(100_000)), "nested deeper than 64"),
        (_with_raw("metadata", '{"a": ' + _nested(40) + "}"), "metadata: nested deeper than 32"),
        (_with_raw("runtime", '{"a": ' + _nested(40) + "}"), "runtime: nested deeper than 32"),
        (_with_raw("version", str(2**63)), "version: must be an integer"),
        (_with_raw("version", "-1"), "version: must be an integer"),
        (_with_raw("timestamp", "1e20"), "timestamp: must be a number of seconds"),
        (_with_raw("archive_size_bytes", str(2**64), where={}), "archive_size_bytes"),
        (_with_raw("members", str(2**63), where={}), "members"),
        (_with_raw("schema_version", str(2**63), where={}), "schema_version"),
        (json.dumps(_record(metadata={"blob": "x" * (17 * 1024)})), "metadata: is 17"),
        (json.dumps(_record(node_id="n" * 1000)), "node_id: must be a string of at most"),
        (json.dumps(_record(manifest={"archive_format": "f" * 1000})), "archive_format"),
        (json.dumps(_record(manifest={"archive_paths": ["/app/data"] * 65})), "at most 64"),
        (json.dumps(_record(manifest={"archive_paths": ["/" + "a" * 5000]})), "archive_paths"),
        (json.dumps(_record(pad="x" * (C.MAX_RECORD_BYTES + 1))), "at most 262144 bytes"),
    ],
    ids=[
        "5000-digit-version",
        "400-digit-int-timestamp",
        "400-digit-float-timestamp",
        "1e400-timestamp",
        "NaN-timestamp",
        "Infinity-in-metadata",
        "metadata-nested-100k",
        "metadata-nested-41",
        "runtime-nested-41",
        "version-2**63",
        "negative-version",
        "timestamp-after-year-9999",
        "archive-size-2**64",
        "members-2**63",
        "schema-version-2**63",
        "metadata-17KiB",
        "node-id-1000-chars",
        "format-1000-chars",
        "65-archive-paths",
        "5000-char-path",
        "record-over-256KiB",
    ],
)
def test_hostile_record_is_refused_with_a_reason_naming_the_field(text: str, reason: str) -> None:
    exc = _refused(text)
    assert reason in str(exc)
    assert exc.cid == CID  # the record's CID is named whenever it can be read


def test_cid_is_named_even_when_the_json_cannot_be_parsed() -> None:
    text = '{"cid": "' + CID + '", "metadata": ' + _nested(100_000) + "}"
    assert _refused(text).cid == CID


def test_record_without_a_readable_cid_has_none() -> None:
    assert _refused(_nested(100_000)).cid is None
    assert _refused('{"cid": "../../etc", "version": 1}').cid is None  # not a blob id


def test_brackets_and_escaped_quotes_inside_strings_do_not_count_as_nesting() -> None:
    tricky = '\\"[[[{' + "[" * 3000 + "\\\\"  # JSON: \"[[[{[[[…\\ (ends in a backslash)
    text = _with_raw("metadata", '{"s": "' + tricky + '", "t": "]]]}}"}')
    record = parse_record(text)
    assert record.metadata["s"] == '"[[[{' + "[" * 3000 + "\\"


def test_bounds_allow_what_a_provider_publishes() -> None:
    metadata = {"epoch": 10**40, "deep": json.loads(_nested(31)), "text": "é" * 4000}
    record = parse_record(json.dumps(_record(metadata=metadata)))
    assert record.metadata == metadata


def test_a_bytes_value_that_is_not_utf8_is_refused() -> None:
    exc = _refused(b'{"cid": "' + CID.encode() + b'", "node_id": "\xff"}')
    assert "UTF-8" in str(exc) or "JSON" in str(exc)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=8,
)
_FIELDS = ("cid", "version", "timestamp", "node_id", "metadata", "runtime")
_MANIFEST_FIELDS = (
    "schema_version",
    "archive_paths",
    "archive_format",
    "archive_size_bytes",
    "encryption",
    "runtime",
    "archive_sha256",
    "unpacked_bytes",
    "members",
)


@settings(max_examples=100, deadline=None, database=None)
@given(
    record=st.fixed_dictionaries({}, optional=dict.fromkeys(_FIELDS, _JSON)),
    manifest=st.fixed_dictionaries({}, optional=dict.fromkeys(_MANIFEST_FIELDS, _JSON)),
    noise=st.text(max_size=40),
)
def test_any_registry_value_parses_or_is_record_invalid(
    record: dict[str, Any], manifest: dict[str, Any], noise: str
) -> None:
    whole = _record(**record)
    whole["manifest"].update(manifest)
    for text in (json.dumps(whole), json.dumps(whole)[: len(noise)] + noise, noise):
        with contextlib.suppress(RecordInvalid):  # the only way a registry value may fail
            parse_record(text)
