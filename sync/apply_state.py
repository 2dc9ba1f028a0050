"""Durable consumer state: ``current_apply.json`` and ``halt.json`` in ``sync_state/``
(docs/FORMAT.md, "current_apply.json").

``current_apply.json`` says what the consumer is doing (``preparing`` ... ``uncertain``)
and carries, across every state change, the **durably applied CID**: the only thing
the consumer dedupes on. Not ``last_apply.json`` (the app can write its own control
dir) and not ``version`` (informational, may go backwards).

``halt.json`` exists while the instance is halted (a rollback could not prove the
volume consistent, README "Consumer"): the container stays stopped across loop iterations and
runner restarts until ``car sync retry`` clears it.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from ..fsutil import atomic_write_json, fsync_dir
from . import constants as C


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class ApplyState:
    """Reads and writes the consumer's durable state files."""

    def __init__(self, sync_state_dir: Path) -> None:
        self.dir = sync_state_dir

    @property
    def current_path(self) -> Path:
        return self.dir / C.CURRENT_APPLY_FILE

    @property
    def halt_path(self) -> Path:
        return self.dir / C.HALT_FILE

    # --- current_apply.json -----------------------------------------------------------
    def current(self) -> dict[str, Any] | None:
        """The parsed ``current_apply.json`` (``{}`` if unreadable), or None if absent."""
        return _read_json(self.current_path)

    def applied_cid(self) -> str | None:
        """The CID whose apply was durably completed, or None (fresh consumer)."""
        cid = (self.current() or {}).get("applied_cid")
        return cid if isinstance(cid, str) and cid else None

    def set_state(
        self,
        state: str,
        *,
        cid: str,
        version: int | None,
        now: float,
        error: str | None = None,
        stage: str | None = None,
    ) -> dict[str, Any]:
        """Durably record a state change (atomic write + fsync of the directory).

        ``applied_cid``/``applied_version`` are carried over from the previous file and
        become ``cid``/``version`` when ``state`` is ``applied``.

        Raises:
            ValueError: ``state`` is not one of ``C.APPLY_STATES``.
            OSError: the write failed (the previous file is intact).
        """
        if state not in C.APPLY_STATES:
            raise ValueError(f"unknown apply state {state!r}")
        previous = self.current() or {}
        data: dict[str, Any] = {
            "state": state,
            "cid": cid,
            "version": version,
            "updated_timestamp": now,
            "started_timestamp": previous.get("started_timestamp")
            if previous.get("cid") == cid and state != C.APPLY_STATE_PREPARING
            else now,
            "error": error,
            "stage": stage,
            "applied_cid": previous.get("applied_cid"),
            "applied_version": previous.get("applied_version"),
            "applied_timestamp": previous.get("applied_timestamp"),
        }
        if state == C.APPLY_STATE_APPLIED:
            data.update(applied_cid=cid, applied_version=version, applied_timestamp=now)
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.current_path, data)
        fsync_dir(self.dir)
        return data

    # --- halt.json ----------------------------------------------------------------------
    def enter_halt(self, cid: str, version: object, reason: str, *, now: float) -> None:
        """State ``uncertain`` and ``halt.json``: consistency could not be proven."""
        self.set_state(
            C.APPLY_STATE_UNCERTAIN,
            cid=cid,
            version=version if isinstance(version, int) else None,
            now=now,
            error=reason,
            stage=C.STAGE_COMMIT,
        )
        self.halt(reason, now=now, cid=cid or None)

    def halt(self, reason: str, *, now: float, cid: str | None = None) -> None:
        """Enter the halt: the container must stay stopped until ``clear_halt``."""
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.halt_path, {"reason": reason, "cid": cid, "halted_at": now})
        fsync_dir(self.dir)

    def is_halted(self) -> bool:
        return os.path.lexists(self.halt_path)

    def halt_reason(self) -> str | None:
        """The halt reason, or None when not halted (an unreadable file still halts)."""
        data = _read_json(self.halt_path)
        if data is None:
            return None
        reason = data.get("reason")
        return reason if isinstance(reason, str) else "halt.json is unreadable"

    def clear_halt(self) -> bool:
        """Leave the halt (``car sync retry``); True if there was one."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.halt_path)
            fsync_dir(self.dir)
            return True
        return False
