"""request.json semantics: an untrusted JSON value -> a typed ``SyncRequest``
(docs/FORMAT.md, "request.json").

``control_files.py`` already turned the bytes into JSON; this module checks the shape
and every archive path (resolved for reading, docs/FORMAT.md "Archive paths") and answers with
``RequestRejected`` carrying a stable ``code`` and a message an app author can act on.
Unknown top-level fields are ignored so apps written for the older runner keep working.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import RequestRejected
from . import constants as C
from .json_limits import structure_problems
from .paths import PathResolver
from .records import SyncRequest


def _reject(code: str, message: str) -> RequestRejected:
    return RequestRejected(message, code=code, stage=C.STAGE_VALIDATION)


def parse_request(body: object, *, allow_online: bool, resolver: PathResolver) -> SyncRequest:
    """Validate a parsed request body.

    Args:
        body: the parsed JSON value of request.json.
        allow_online: the provider's ``SYNC.ALLOW_ONLINE_PROVIDER_CAPTURE``.
        resolver: resolves each archive path for reading (rules 1-8 of docs/FORMAT.md,
            "Archive paths").

    Returns:
        The typed request; ``archive_paths`` are the normalised container paths,
        duplicates removed in order; ``requested_paths`` keep them as written.

    Raises:
        RequestRejected: the first problem found, with a stable ``code``.
    """
    if not isinstance(body, dict):
        raise _reject("request_not_object", "request.json must be a JSON object")
    paths = _archive_paths(body.get("archive_paths"), resolver)
    metadata = _metadata(body.get("metadata"))
    capture, apply = _runtime(body.get("runtime"), allow_online=allow_online)
    request_id = body.get("request_id")
    if request_id is not None and not isinstance(request_id, str):
        raise _reject("request_id_invalid", "request_id must be a string when given")
    return SyncRequest(
        archive_paths=paths,
        metadata=metadata,
        provider_capture=capture,
        consumer_apply=apply,
        request_id=request_id,
        requested_paths=tuple(body["archive_paths"]),
    )


def _archive_paths(raw: object, resolver: PathResolver) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        raise _reject(
            "archive_paths_invalid", "archive_paths must be a non-empty list of container paths"
        )
    if len(raw) > C.MAX_ARCHIVE_PATHS:
        raise _reject(
            "archive_paths_too_many",
            f"archive_paths holds {len(raw)} entries; at most {C.MAX_ARCHIVE_PATHS} are allowed",
        )
    out: list[str] = []
    for item in raw:
        norm = resolver.resolve_for_read(item).container_path
        if norm not in out:
            out.append(norm)
    return tuple(out)


def _metadata(raw: object) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _reject("metadata_not_object", "metadata must be a JSON object")
    # The bounds every consumer applies to a record's metadata (records.metadata_problems):
    # refused here, or the snapshot would be published and refused by every consumer.
    problems = structure_problems(
        raw, max_depth=C.MAX_METADATA_DEPTH, max_int_digits=C.MAX_JSON_INT_DIGITS
    )
    if problems:
        raise _reject("metadata_too_complex", "metadata: " + "; ".join(problems))
    size = len(json.dumps(raw, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    if size > C.MAX_METADATA_BYTES:
        raise _reject(
            "metadata_too_large",
            f"metadata is {size} bytes serialized; at most {C.MAX_METADATA_BYTES} are allowed",
        )
    return raw


def _runtime(raw: object, *, allow_online: bool) -> tuple[str, str]:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise _reject("runtime_not_object", "runtime must be a JSON object")
    capture = raw.get("provider_capture", C.CAPTURE_OFFLINE)
    if capture not in C.PROVIDER_CAPTURE_MODES:
        raise _reject(
            "provider_capture_invalid",
            'runtime.provider_capture must be "offline" or "online"',
        )
    if capture == C.CAPTURE_ONLINE and not allow_online:
        raise _reject(
            "online_capture_not_allowed",
            'runtime.provider_capture "online" is disabled on this provider '
            "(SYNC.ALLOW_ONLINE_PROVIDER_CAPTURE is false)",
        )
    apply = raw.get("consumer_apply", C.APPLY_OFFLINE_RESTART)
    if apply not in C.CONSUMER_APPLY_MODES:
        raise _reject(
            "consumer_apply_invalid",
            "runtime.consumer_apply must be one of " + ", ".join(C.CONSUMER_APPLY_MODES),
        )
    return str(capture), str(apply)
