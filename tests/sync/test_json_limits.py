"""json_limits.loads_bounded: bounded, strict JSON for every untrusted text we parse.

A request body (refused lone surrogates: its answer must be strict JSON) and a registry
value (a size bound; a lone surrogate in its metadata is written as U+FFFD later) go
through the same scan and the same parser hooks.
"""

from __future__ import annotations

import time

import pytest
from container_apps.sync.json_limits import JSONRefused, loads_bounded


def _loads(text: str) -> object:
    return loads_bounded(text, max_depth=8, max_int_digits=5, refuse_lone_surrogates=True)


def test_nesting_is_measured_without_recursion_and_refused_fast() -> None:
    started = time.monotonic()
    with pytest.raises(JSONRefused, match="nested deeper than 8 levels"):
        _loads("[" * 1_000_000)
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("NaN", "NaN is not a JSON value"),
        ("[-Infinity]", "-Infinity is not a JSON value"),
        ("[1e400]", "out of range (1e400)"),
        ("123456", "more than 5 digits"),
        (r'{"\udfff": 1}', "lone surrogate"),
        ('{"a": 1', "is not valid JSON"),
        ('"unterminated [[[[[[[[[[', "JSON"),
    ],
)
def test_refusals_say_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(JSONRefused) as info:
        _loads(text)
    assert fragment in str(info.value)


def test_accepted_values_are_plain_json_values() -> None:
    text = r'{"a": [1, -12345, 2.5e10, "\ud83d\ude00", null, true], "b": {"c": {}}}'
    assert _loads(text) == {"a": [1, -12345, 2.5e10, "\U0001f600", None, True], "b": {"c": {}}}


def test_lone_surrogates_pass_when_the_caller_does_not_refuse_them() -> None:
    value = loads_bounded(r'{"k": "a\udcff"}', max_depth=8, max_int_digits=5)
    assert value == {"k": "a\udcff"}


def test_size_bound_counts_utf8_bytes_before_parsing() -> None:
    text = '"' + "é" * 10 + '"'  # 12 characters, 22 bytes
    assert loads_bounded(text, max_depth=1, max_int_digits=1, max_bytes=22) == "é" * 10
    with pytest.raises(JSONRefused, match="at most 21 bytes"):
        loads_bounded(text, max_depth=1, max_int_digits=1, max_bytes=21)


def test_brackets_inside_strings_are_not_nesting() -> None:
    assert _loads(r'["[[[[[[[[[[\"{{{{{{{{{{"]') == ['[[[[[[[[[["{{{{{{{{{{']
