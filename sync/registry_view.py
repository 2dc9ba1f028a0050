"""What the registry holds now for an instance's key, read in bounded time.

``car sync status`` shows it beside the applied or published snapshot (README, "Health
and status"). It must never hang a monitoring script, so the read runs in a daemon thread
that is abandoned after ``REGISTRY_TIMEOUT`` seconds, with no retries, and it never
creates anything: a missing SQLite registry file is reported, not created.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from ..backend_urls import redact_url
from ..errors import CarError
from ..registries.factory import open_registry
from ..registries.sqlite import SqliteRegistryConfig
from ..retry_policy import RetryPolicy
from ..timestamps import utc_iso
from . import constants as C
from .records import RecordInvalid, parse_record

REGISTRY_TIMEOUT: Final = 3.0
_MASK: Final = "***"


@dataclass(slots=True)
class _Outcome:
    text: str | None = None
    error: str | None = None
    done: bool = False


def registry_view(
    url: str | None, key: str | None, *, timeout: float = REGISTRY_TIMEOUT
) -> dict[str, Any] | None:
    """``{"url", "record", "error", "invalid"}`` for ``key`` in the registry at ``url``.

    None when the instance has no registry or key (sync off). ``record`` is the current
    record's ``cid, version, timestamp, time_utc, node_id`` or None when the key has none;
    ``error`` says why the registry could not be read, ``invalid`` why the value it holds
    is not a record (in both cases ``record`` is None).
    """
    if not url or not key:
        return None
    shown = redact_url(url)
    view: dict[str, Any] = {"url": shown, "record": None, "error": None, "invalid": None}
    if _MASK in url:
        view["error"] = (
            "runner.json keeps this URL without its password; pass the runner config with --config"
        )
        return view
    outcome = _read_bounded(url, key, timeout)
    if outcome.error is not None:
        view["error"] = outcome.error
    elif outcome.text is not None:
        try:
            view["record"] = _summary(outcome.text)
        except RecordInvalid as exc:
            view["invalid"] = str(exc)
    return view


def _summary(text: str) -> dict[str, Any]:
    record = parse_record(text)
    return {
        "cid": record.cid,
        "version": record.version,
        "timestamp": record.timestamp,
        "time_utc": utc_iso(record.timestamp),
        "node_id": record.node_id or None,
    }


def _read_bounded(url: str, key: str, timeout: float) -> _Outcome:
    outcome = _Outcome()
    worker = threading.Thread(target=_read, args=(url, key, outcome), daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome.done:
        return _Outcome(error=f"no answer within {timeout:g} s")
    return outcome


def _read(url: str, key: str, outcome: _Outcome) -> None:
    try:
        missing = _missing_file(url)
        if missing:
            outcome.error = missing
            return
        registry = open_registry(url, policy=RetryPolicy(attempts=1))
        registry.hsync(C.CHAINSTORE_HKEY)
        outcome.text = registry.hget(C.CHAINSTORE_HKEY, key)
    except CarError as exc:
        outcome.error = str(exc)
    except Exception as exc:  # a status view reports any failure; it never crashes
        outcome.error = f"{type(exc).__name__}: {exc}"
    finally:
        outcome.done = True


def _missing_file(url: str) -> str | None:
    """Why a file registry cannot be read without creating it, or None."""
    if urlsplit(url).scheme != "sqlite":
        return None
    path = SqliteRegistryConfig.from_url(url).path
    return None if path.is_file() else "the file does not exist"
