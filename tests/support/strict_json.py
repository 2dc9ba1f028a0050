"""A strict JSON reader for tests: what jq, JSON.parse and serde_json all accept.

Python's ``json.loads`` is lenient: it reads ``NaN``/``Infinity`` and lone surrogate
escapes. App authors read our files with stricter parsers, so tests read them with
this one: strict UTF-8, no non-finite constants, no lone surrogates anywhere.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads_strict(data: bytes) -> Any:
    """Parse ``data`` as strict JSON or raise ValueError."""
    text = data.decode("utf-8", errors="strict")
    value = json.loads(text, parse_constant=_no_constant)
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and _SURROGATE.search(item):
            raise ValueError(f"lone surrogate in {item!r}")
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"non-finite number {item!r}")
    return value
