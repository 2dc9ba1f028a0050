"""Bounded JSON for untrusted values: size, nesting depth, integer digits, finite numbers.

``json.loads`` on hostile text fails in more ways than ``JSONDecodeError``: a 5,000-digit
integer raises ``ValueError`` (Python's int conversion limit), deep nesting
``RecursionError``, and a 400-digit integer parses but raises ``OverflowError`` once it
is used as a float. ``loads_bounded`` refuses all of these with one ``JsonLimitError``
that says which bound was crossed: the size and the nesting depth are checked on the raw
text first (a linear scan that does not recurse), then the parser's hooks refuse long
integers, non-finite numbers and the ``NaN``/``Infinity`` constants.
``structure_problems`` checks an already parsed value (a request's metadata) against the
same depth and digit bounds, iteratively.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# A JSON string token (escapes included; an unterminated one runs to the end) or a bracket.
# Written as an "unrolled loop" so matching is linear in the text's length.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)


class JsonLimitError(ValueError):
    """The text crosses one of the bounds (or is not strict JSON); the message says which."""


def nesting_depth(text: str, limit: int) -> int:
    """The deepest ``[``/``{`` nesting outside strings, scanning at most to ``limit + 1``.

    Brackets inside strings (escaped quotes included) do not count. Unbalanced text is
    left for the parser to report.
    """
    depth = deepest = 0
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif token in ("]", "}"):
            depth -= 1
    return deepest


def loads_bounded(text: str, *, max_bytes: int, max_depth: int, max_int_digits: int) -> Any:
    """Parse strict JSON within the bounds.

    Raises:
        JsonLimitError: over ``max_bytes`` (UTF-8), nested deeper than ``max_depth``, an
            integer with more than ``max_int_digits`` digits, a number that is not
            finite, or a ``NaN``/``Infinity`` constant.
        json.JSONDecodeError: not JSON at all.
    """
    if len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise JsonLimitError(f"at most {max_bytes} bytes are allowed")
    if nesting_depth(text, max_depth) > max_depth:
        raise JsonLimitError(f"nested deeper than {max_depth} levels")

    def bounded_int(digits: str) -> int:
        if len(digits.lstrip("-")) > max_int_digits:
            raise JsonLimitError(f"an integer has more than {max_int_digits} digits")
        return int(digits)

    def finite_float(literal: str) -> float:
        value = float(literal)
        if not math.isfinite(value):
            raise JsonLimitError(f"the number {literal[:32]} is not finite")
        return value

    def no_constant(name: str) -> Any:
        raise JsonLimitError(f"{name} is not valid JSON")

    try:
        return json.loads(
            text, parse_int=bounded_int, parse_float=finite_float, parse_constant=no_constant
        )
    except RecursionError:  # cannot happen below max_depth; kept as a last line
        raise JsonLimitError("nested too deeply") from None


def structure_problems(value: Any, *, max_depth: int, max_int_digits: int) -> list[str]:
    """Depth, integer and number problems of a parsed JSON value (``value`` is level 1).

    Iterative, so a value nested as deep as the parser allowed cannot exhaust the stack.
    """
    problems: list[str] = []
    limit = 10**max_int_digits
    stack: list[tuple[Any, int]] = [(value, 1)]
    deepest = 0
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level > max_depth:
                continue
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int) and abs(item) >= limit:
            problems.append(f"an integer has more than {max_int_digits} digits")
        elif isinstance(item, float) and not math.isfinite(item):
            problems.append(f"the number {item} is not finite")
    if deepest > max_depth:
        problems.append(f"nested deeper than {max_depth} levels")
    return sorted(set(problems))
