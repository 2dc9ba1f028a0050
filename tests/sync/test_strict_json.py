"""strict_json.loads_strict: JSON that can always be written back as strict JSON."""

from __future__ import annotations

import time

import pytest
from container_apps.sync.strict_json import JSONRefused, loads_strict


def _loads(text: str) -> object:
    return loads_strict(text, max_depth=8, max_int_digits=5)


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
