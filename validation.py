"""Turn pydantic validation errors into the operator-facing lines (README, "Config keys").

Every problem is reported at once as ``KEY.PATH: must be <what>, got <value>``. The
"what" comes from each field's ``description`` (so the rule is written once, beside the
field), an unknown key names the closest known one, and a missing key says "required".
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from pydantic import BaseModel, ValidationError


def _field_for(model: type[BaseModel], loc: tuple[int | str, ...]) -> tuple[Any, list[str]]:
    """Walk ``loc`` through nested models; return (FieldInfo or None, known aliases)."""
    current: Any = model
    info = None
    known: list[str] = []
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return info, known
        known = [f.alias or name for name, f in current.model_fields.items()]
        info = next(
            (f for name, f in current.model_fields.items() if (f.alias or name) == part), None
        )
        if info is None:
            return None, known
        current = info.annotation
        # Optional[Model] / Model | None
        for arg in getattr(current, "__args__", ()) or ():
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                current = arg
    return info, known


def show_value(value: Any) -> str:
    """``value`` as the config spells it (JSON), shortened to 80 characters."""
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def format_validation_error(
    model: type[BaseModel], exc: ValidationError, *, prefix: str = ""
) -> list[str]:
    """One line per problem, each starting with the full key path."""
    lines: list[str] = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        path = ".".join(str(p) for p in (prefix, *loc) if p != "")
        kind = err["type"]
        if kind == "extra_forbidden":
            _, known = _field_for(model, (*loc[:-1], "__none__")) if loc else (None, [])
            close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.5)
            tip = f" (did you mean {close[0]}?)" if close else f" (known keys: {', '.join(known)})"
            lines.append(f"{path}: unknown key{tip}")
            continue
        if kind == "missing":
            lines.append(f"{path}: required")
            continue
        info, _ = _field_for(model, loc)
        if kind == "value_error" or info is None or not info.description:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{path or prefix}: {msg}" if (path or prefix) else msg)
            continue
        lines.append(f"{path}: must be {info.description}, got {show_value(err.get('input'))}")
    return lines
