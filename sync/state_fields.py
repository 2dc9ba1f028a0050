"""Tolerant field readers for the JSON state files the runner reads back.

A state file may come from an older version, the older runner, or a disk that damaged
it; reading one must never raise. Each reader returns the field's value if it has the
field's type, else None (or an empty value), and never converts: an int timestamp
stays an int, so a file read and written back is unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

_T = TypeVar("_T")


def read_str(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return value if isinstance(value, str) else None


def read_int(raw: Mapping[str, Any], key: str) -> int | None:
    value = raw.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def read_number(raw: Mapping[str, Any], key: str) -> float | None:
    """A finite int or float, returned as it is."""
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


def read_bool(raw: Mapping[str, Any], key: str) -> bool | None:
    value = raw.get(key)
    return value if isinstance(value, bool) else None


def read_object(raw: Mapping[str, Any], key: str) -> dict[str, Any]:
    """A JSON object field (a copy), or {}."""
    value = raw.get(key)
    return dict(value) if isinstance(value, dict) else {}


def read_strs(raw: Mapping[str, Any], key: str) -> tuple[str, ...]:
    """A list of strings, or () when it is not one."""
    value = raw.get(key)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return ()


def unknown_fields(raw: Mapping[str, Any], known: Iterable[str]) -> dict[str, Any]:
    """The fields of ``raw`` not named in ``known`` (another writer's additions)."""
    names = set(known)
    return {k: v for k, v in raw.items() if k not in names}


def required(value: _T | None, name: str) -> _T:
    """``value`` read by one of the readers above, for a field the file cannot lack.

    Raises:
        ValueError: it was missing or of the wrong type.
    """
    if value is None:
        raise ValueError(f"missing or ill-typed {name}")
    return value
