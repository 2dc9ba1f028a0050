"""A request body's bytes -> ClaimedRequest, and what its answer echoes.

docs/FORMAT.md, "request.json".

Strict UTF-8 and strict JSON: besides what is not JSON, a body is refused when it parses
but could not be echoed back as strict JSON (lone surrogates, non-finite numbers, huge
integers, deep nesting), so every body gets an answer a strict parser accepts.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from container_apps.sync import constants as C
from container_apps.sync.control_files import ControlDir
from container_apps.sync.request_body import parse_body
from container_apps.tests.support.fakes import FakeClock
from container_apps.tests.support.strict_json import loads_strict


@pytest.fixture
def control_dir(tmp_path: Path) -> Path:
    d = tmp_path / "volume-sync"
    d.mkdir()
    return d


@pytest.fixture
def control(control_dir: Path) -> ControlDir:
    return ControlDir(control_dir, "node-a", FakeClock())


def test_body_of_exactly_the_limit_is_accepted() -> None:
    body = b'{"x": "' + b"a" * (C.MAX_REQUEST_BYTES - 10) + b'"}'
    assert len(body) == C.MAX_REQUEST_BYTES - 1
    assert parse_body(body).error is None


def test_invalid_utf8_is_refused_without_raw_body() -> None:
    claimed = parse_body(b'{"archive_paths": ["\xff\xfe"]}')
    assert claimed.error is not None and "UTF-8" in claimed.error
    assert claimed.raw_body is None


def test_unparseable_utf8_gets_raw_body_of_first_1024_chars() -> None:
    text = "not json " + "é" * 2000
    claimed = parse_body(text.encode())
    assert claimed.error is not None and "not valid JSON" in claimed.error
    assert claimed.raw_body == text[:1024]


@pytest.mark.parametrize("text", ["NaN", '{"a": Infinity}', "[" * 100000])
def test_non_standard_or_deep_json_is_refused(text: str) -> None:
    assert parse_body(text.encode()).error is not None


def test_non_object_json_parses_here_and_has_no_raw_body() -> None:
    claimed = parse_body(b"[1, 2]")
    assert claimed.error is None and claimed.body == [1, 2] and claimed.raw_body is None


# --- what parses but could not be echoed strictly (issue 9 item 14) ------------------------


def _body(extra: str) -> str:
    """A request for /app/data whose other top-level members are the JSON text ``extra``."""
    return '{"archive_paths": ["/app/data"], ' + extra + "}"


def _nested(levels: int) -> str:
    return "[" * levels + "]" * levels


HOSTILE_BODIES = {
    "surrogate_in_metadata": _body(r'"metadata": {"k": "\udcff"}'),
    "surrogate_in_key": _body(r'"metadata": {"\udcff": 1}'),
    "surrogate_in_request_id": _body(r'"request_id": "r\ud800"'),
    "surrogate_in_path": r'{"archive_paths": ["/app/data/\udcff"]}',
    "infinite_number": _body('"metadata": {"n": 1e999}'),
    "negative_infinite_number": _body('"metadata": {"n": -1e999}'),
    "huge_int": _body('"metadata": {"n": ' + "9" * (C.MAX_JSON_INT_DIGITS + 1) + "}"),
    "int_past_python_limit": _body('"metadata": {"n": ' + "9" * 5000 + "}"),
    "nested_under_recursion_limit": _body('"metadata": {"n": ' + _nested(968) + "}"),
    # metadata is level 2, so MAX - 1 more levels is one past the limit
    "nested_one_past_limit": _body('"metadata": {"n": ' + _nested(C.MAX_JSON_DEPTH - 1) + "}"),
}
_EXPECTED_ERROR = {
    "surrogate": "lone surrogate",
    "infinite": "out of range",
    "int": "digits",
    "nested": f"nested deeper than {C.MAX_JSON_DEPTH}",
}


@pytest.mark.parametrize("name", sorted(HOSTILE_BODIES))
def test_body_that_cannot_be_echoed_strictly_is_refused_at_parse_time(name: str) -> None:
    claimed = parse_body(HOSTILE_BODIES[name].encode())
    assert claimed.error is not None and claimed.body is None
    fragment = next(v for k, v in _EXPECTED_ERROR.items() if k in name)
    assert fragment in claimed.error
    assert claimed.raw_body == HOSTILE_BODIES[name][: C.RAW_BODY_PREVIEW_CHARS]


@pytest.mark.parametrize("name", sorted(HOSTILE_BODIES))
def test_body_that_cannot_be_echoed_strictly_gets_one_strict_answer(
    control: ControlDir, control_dir: Path, name: str
) -> None:
    (control_dir / C.REQUEST_FILE).write_text(HOSTILE_BODIES[name])
    claimed = control.claim()
    assert claimed is not None
    control.fail_claimed(claimed, C.STAGE_VALIDATION, claimed.error or "")
    assert loads_strict((control_dir / C.RESPONSE_FILE).read_bytes())["status"] == "error"
    assert loads_strict((control_dir / C.INVALID_FILE).read_bytes())["request"] is None
    assert sorted(p.name for p in control_dir.iterdir()) == [C.INVALID_FILE, C.RESPONSE_FILE]


def test_bounds_are_inclusive_and_surrogate_pairs_are_fine() -> None:
    widest = "9" * C.MAX_JSON_INT_DIGITS
    text = _body(
        f'"d": {_nested(C.MAX_JSON_DEPTH - 1)}, "i": -{widest}, '
        r'"e": "\ud83d\ude00", "f": 1e308'
    )
    claimed = parse_body(text.encode())
    assert claimed.error is None
    assert claimed.body["e"] == "\U0001f600" and claimed.body["i"] == -int(widest)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = _body('"s": "' + "[" * (C.MAX_JSON_DEPTH * 2) + r'", "t": "\"[[["')
    assert parse_body(text.encode()).error is None
