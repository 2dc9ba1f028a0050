"""Every JSON example in docs/FORMAT.md goes through the real code, so the doc cannot drift.

Examples are fenced as ```json <kind>; each kind is checked against what the project's own
parser accepts or its own writer produces.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from container_apps.sync import constants as C
from container_apps.sync.apply_state import ApplyState
from container_apps.sync.chunks.index import index_document
from container_apps.sync.chunks.index_parse import parse_index
from container_apps.sync.chunks.writer import ChunkedSnapshotWriter
from container_apps.sync.control_files import ControlDir
from container_apps.sync.paths import PathResolver
from container_apps.sync.records import parse_record
from container_apps.sync.request import parse_request
from container_apps.tests.support.spec_fields import (
    LAST_APPLY_FIELDS,
    RECEIVED_HISTORY_FIELDS,
    SENT_HISTORY_FIELDS,
)
from container_apps.volumes.binding import VolumeBinding

DOC = Path(__file__).resolve().parents[1] / "docs" / "FORMAT.md"
FENCE = re.compile(r"```json (\w+)\n(.*?)```", re.S)

OK_RESPONSE_FIELDS = {
    "status",
    "cid",
    "version",
    "published_timestamp",
    "archive_paths",
    "archive_size_bytes",
    "chainstore_ack",
    "metadata",
    "downtime_seconds",
}


def examples(kind: str) -> list[Any]:
    found = [json.loads(body) for k, body in FENCE.findall(DOC.read_text()) if k == kind]
    assert found, f"no ```json {kind} example in FORMAT.md"
    return found


def test_every_fenced_json_example_parses() -> None:
    kinds = {k for k, _ in FENCE.findall(DOC.read_text())}
    assert kinds == {
        "request",
        "response",
        "invalid",
        "last_apply",
        "record",
        "sent",
        "received",
        "current_apply",
        "chunked_index",
    }


def test_record_examples_parse_and_round_trip() -> None:
    full, legacy, chunked = examples("record")
    assert parse_record(json.dumps(full)).to_dict() == full
    assert parse_record(json.dumps(legacy)).manifest.archive_sha256 is None
    assert parse_record(json.dumps(chunked)).to_dict() == chunked
    assert chunked["manifest"]["archive_format"] == "chunked"


def test_request_example_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    binding = VolumeBinding("data", "fixed", tmp_path / "data", "/app/data")
    (body,) = examples("request")
    request = parse_request(body, allow_online=False, resolver=PathResolver([binding]))
    assert request.request_id == "job-42"
    assert request.archive_paths == ("/app/data",)


def test_failure_examples_have_the_shape_control_dir_writes(tmp_path: Path) -> None:
    control = ControlDir(tmp_path, node_id="node-a", clock=lambda: 1.0)
    control.fail(
        "validation",
        "bad",
        request_body=None,
        archive_paths=["/etc"],
        request_id="job-43",
        raw_body="not json",
    )
    written_invalid = json.loads((tmp_path / C.INVALID_FILE).read_text())
    written_response = json.loads((tmp_path / C.RESPONSE_FILE).read_text())
    ok, error = examples("response")
    (invalid,) = examples("invalid")
    assert set(error) == set(written_response)
    assert set(invalid) == set(written_invalid)
    assert set(invalid["_error"]) == set(written_invalid["_error"])
    assert set(ok) >= OK_RESPONSE_FIELDS


def test_current_apply_example_has_the_fields_apply_state_writes(tmp_path: Path) -> None:
    written = ApplyState(tmp_path).set_state("applied", cid="bafkreiabc", version=1, now=2.0)
    (example,) = examples("current_apply")
    assert set(example) == set(written)
    assert example["state"] in C.APPLY_STATES


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        ("sent", SENT_HISTORY_FIELDS),
        ("received", RECEIVED_HISTORY_FIELDS),
        ("last_apply", LAST_APPLY_FIELDS),
    ],
)
def test_history_and_last_apply_examples_have_the_spec_fields(kind: str, fields: set[str]) -> None:
    (example,) = examples(kind)
    assert set(example) == fields


def test_chunked_index_example_is_what_the_writer_makes_and_the_parser_accepts(
    tmp_path: Path,
) -> None:
    (example,) = examples("chunked_index")
    docs = tmp_path / "data" / "docs"
    docs.mkdir(parents=True)
    (docs / "notes.txt").write_bytes(b"hello\n")
    (docs / "wide.txt").write_bytes(b"x" * 2000 + b"\n")
    for path in (docs / "notes.txt", docs / "wide.txt", docs, docs.parent):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
        os.utime(path, ns=(1764300000 * 10**9, 1764300000 * 10**9))
    binding = VolumeBinding("data", "fixed", tmp_path / "data", "/app/data")
    source = PathResolver([binding]).resolve_for_read("/app/data")
    staged = ChunkedSnapshotWriter(tmp_path / "staging").write([source])
    assert index_document(staged.index) == example
    assert parse_index(staged.index_path.read_bytes()) == staged.index
