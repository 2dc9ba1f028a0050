"""Strict JSON for untrusted input: only values we can always write back
(docs/FORMAT.md, "request.json").

Python's ``json.loads`` accepts text that parses fine but cannot be echoed: a lone
surrogate escape (``"\\udcff"``) makes the UTF-8 encoding of the answer fail, ``1e999``
becomes ``inf`` and is written as ``Infinity`` (which jq and ``JSON.parse`` reject), an
integer past 4300 digits cannot be turned back into text, and a value nested just under
the parser's recursion limit overflows the encoder's. ``loads_strict`` refuses all of
them while parsing, with a message an app author can act on, so every value that gets
past it can be answered with.

Nesting is measured on the text before parsing, by a scan that does not recurse, so a
body nested 100,000 levels deep is refused cheaply instead of exhausting the stack.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# A string literal (skipped; an unterminated one runs to the end of the text), or one
# bracket. Brackets inside strings are text, not nesting.
_TOKEN = re.compile(r'"(?:[^"\\]++|\\.)*+(?:"|\Z)|[\[\]{}]', re.DOTALL)
_SURROGATE = re.compile("[\ud800-\udfff]")


class JSONRefused(ValueError):
    """The text is not JSON, or is JSON we refuse; ``str()`` says which and why."""


def loads_strict(text: str, *, max_depth: int, max_int_digits: int) -> Any:
    """Parse ``text`` as JSON that can always be written back as strict JSON.

    Args:
        text: the JSON text (already decoded as strict UTF-8).
        max_depth: most nested arrays/objects allowed (the top-level one counts as 1).
        max_int_digits: most digits an integer may have.

    Returns:
        The parsed value.

    Raises:
        JSONRefused: not JSON (``NaN``/``Infinity`` included), nested deeper than
            ``max_depth``, a non-finite number, an integer longer than
            ``max_int_digits``, or a string holding a lone surrogate.
    """
    _check_depth(text, max_depth)

    def parse_int(digits: str) -> int:
        if len(digits.lstrip("-")) > max_int_digits:
            raise JSONRefused(f"has an integer of more than {max_int_digits} digits")
        return int(digits)

    try:
        value = json.loads(
            text,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            parse_int=parse_int,
        )
    except JSONRefused:
        raise
    except ValueError as exc:  # JSONDecodeError, or int() past Python's digit limit
        raise JSONRefused(f"is not valid JSON: {exc}") from None
    _check_strings(value)
    return value


def _check_depth(text: str, max_depth: int) -> None:
    depth = 0
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > max_depth:
                raise JSONRefused(f"is nested deeper than {max_depth} levels")
        elif token in ("]", "}"):
            depth -= 1


def _refuse_constant(name: str) -> Any:
    raise JSONRefused(f"is not valid JSON: {name} is not a JSON value")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise JSONRefused(f"has a number out of range ({literal[:40]})")
    return value


def _check_strings(value: Any) -> None:
    """Refuse a lone surrogate in any key or string: it has no UTF-8 encoding."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and _SURROGATE.search(item):
            raise JSONRefused(
                "has a string with a lone surrogate escape (\\ud800-\\udfff not part of "
                "a pair), which is not valid Unicode"
            )
