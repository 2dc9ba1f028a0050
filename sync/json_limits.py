"""Bounded, strict JSON for untrusted text: one scan, one set of parser hooks.

Every JSON text an app or another node hands us (a request body, a registry value) goes
through ``loads_bounded``. Python's ``json.loads`` fails on hostile text in more ways
than ``JSONDecodeError`` and accepts text whose value cannot be written back: a
5,000-digit integer raises ``ValueError`` (the int conversion limit), deep nesting
``RecursionError``, ``1e999`` becomes ``inf`` (written as ``Infinity``, which jq and
``JSON.parse`` reject), ``NaN`` parses, and a lone surrogate escape (``"\\udcff"``) has
no UTF-8 encoding. ``loads_bounded`` refuses each with one ``JSONRefused`` whose message
says which bound was crossed: the size and the nesting depth are checked on the raw text
first (a linear scan that does not recurse, so 100,000 levels are refused cheaply), then
the parser's hooks refuse long integers, non-finite numbers and the ``NaN``/``Infinity``
constants, and, for text whose value is echoed to the app (docs/FORMAT.md,
"request.json"), lone surrogates.

``structure_problems`` checks an already parsed value (a request's metadata) against
the same depth and digit bounds, iteratively.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# A JSON string token (escapes included; an unterminated one runs to the end) or a bracket.
# Written as an "unrolled loop" so matching is linear in the text's length; brackets
# inside strings are text, not nesting.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)
_SURROGATE = re.compile("[\ud800-\udfff]")


class JSONRefused(ValueError):
    """The text is not JSON, or is JSON we refuse; ``str()`` says which and why.

    Messages are predicates, to follow what was refused: "request body is nested deeper
    than 64 levels", "record has an integer of more than 64 digits".
    """


def loads_bounded(
    text: str,
    *,
    max_depth: int,
    max_int_digits: int,
    max_bytes: int | None = None,
    refuse_lone_surrogates: bool = False,
) -> Any:
    """Parse ``text`` as strict JSON within the bounds.

    Args:
        text: the JSON text (already decoded as strict UTF-8).
        max_depth: most nested arrays/objects allowed (the top-level one counts as 1).
        max_int_digits: most digits an integer may have.
        max_bytes: most UTF-8 bytes the text may have (None: the caller bounded it).
        refuse_lone_surrogates: refuse a key or string holding a lone surrogate, for a
            value that must be written back as strict JSON as it is.

    Returns:
        The parsed value.

    Raises:
        JSONRefused: not JSON (``NaN``/``Infinity`` included), over ``max_bytes``, nested
            deeper than ``max_depth``, a non-finite number, an integer longer than
            ``max_int_digits``, or (if refused) a lone surrogate.
    """
    if max_bytes is not None and (
        len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes
    ):
        raise JSONRefused(f"is too large (at most {max_bytes} bytes are allowed)")
    if nesting_depth(text, max_depth) > max_depth:
        raise JSONRefused(f"is nested deeper than {max_depth} levels")

    def parse_int(digits: str) -> int:
        if len(digits.lstrip("-")) > max_int_digits:
            raise JSONRefused(f"has an integer of more than {max_int_digits} digits")
        return int(digits)

    try:
        value = json.loads(
            text, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=parse_int
        )
    except JSONRefused:
        raise
    except RecursionError:  # cannot happen below max_depth; kept as a last line
        raise JSONRefused("is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, or int() past Python's digit limit
        raise JSONRefused(f"is not valid JSON: {exc}") from None
    if refuse_lone_surrogates:
        _check_strings(value)
    return value


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


def _refuse_constant(name: str) -> Any:
    raise JSONRefused(f"is not valid JSON: {name} is not a JSON value")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise JSONRefused(f"has a number out of range ({literal[:40]}): it is not finite")
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
