"""The bytes of a claimed request.json -> a ``ClaimedRequest`` (docs/FORMAT.md,
"request.json").

Size limit, strict UTF-8 and strict JSON, and what a failure answer echoes of the body
(``request_id``, ``archive_paths``, the ``raw_body`` preview). ``control_files.py``
claims the file; request *semantics* are ``request.py``'s.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from . import constants as C
from .json_limits import JSONRefused, loads_bounded


@dataclass(frozen=True, slots=True)
class ClaimedRequest:
    """The bytes of a claimed request.json and what they parsed to.

    ``error`` is set when the body is oversize, not UTF-8 or not JSON; ``body`` is then
    None. A body that is JSON but not an object parses fine here (``request.py``
    rejects it), so its value is still echoed in ``request.json.invalid``.
    """

    raw: bytes
    text: str | None
    body: Any
    error: str | None = None

    @property
    def request_id(self) -> str | None:
        """The app's ``request_id`` when the body is an object with a string one."""
        if isinstance(self.body, dict):
            value = self.body.get("request_id")
            if isinstance(value, str):
                return value
        return None

    @property
    def archive_paths(self) -> list[str]:
        """The requested paths as given (strings only), for echoing in a failure answer."""
        if isinstance(self.body, dict):
            paths = self.body.get("archive_paths")
            if isinstance(paths, list):
                return [p for p in paths if isinstance(p, str)]
        return []

    @property
    def raw_body(self) -> str | None:
        """First 1024 chars, only for bodies that were valid UTF-8 but not JSON."""
        if self.error is not None and self.text is not None:
            return self.text[: C.RAW_BODY_PREVIEW_CHARS]
        return None


def parse_body(raw: bytes) -> ClaimedRequest:
    """Size limit, strict UTF-8 and strict JSON for a request body.

    Strict JSON (``json_limits.loads_bounded``) also refuses what parses but could not be
    echoed back as strict JSON: lone surrogates, non-finite numbers, huge integers and
    deep nesting. Such a body is answered like unparseable text (``request`` null, the
    first 1024 characters as ``raw_body``), so writing the answer cannot fail.
    """
    if len(raw) > C.MAX_REQUEST_BYTES:
        return ClaimedRequest(
            raw[:0], None, None, f"request body exceeds {C.MAX_REQUEST_BYTES} bytes"
        )
    try:
        text = raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        return ClaimedRequest(
            raw, None, None, f"request body is not valid UTF-8 (byte {exc.start})"
        )
    try:
        body = loads_bounded(
            text,
            max_depth=C.MAX_JSON_DEPTH,
            max_int_digits=C.MAX_JSON_INT_DIGITS,
            refuse_lone_surrogates=True,
        )
    except JSONRefused as exc:
        return ClaimedRequest(raw, text, None, f"request body {exc}")
    return ClaimedRequest(raw, text, body)


def read_limited(fd: int, limit: int) -> bytes:
    """Read at most ``limit`` bytes: an oversize body is detected without reading it all."""
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = os.read(fd, min(remaining, 65536))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
