"""Durable consumer state: ``current_apply.json`` and ``halt.json`` in ``sync_state/``
(docs/FORMAT.md, "current_apply.json").

``current_apply.json`` says what the consumer is doing (``preparing`` ... ``uncertain``)
and carries, across every state change, the **durably applied CID**: the only thing
the consumer dedupes on. Not ``last_apply.json`` (the app can write its own control
dir) and not ``version`` (informational, may go backwards).

``halt.json`` exists while the instance is halted (a rollback could not prove the
volume consistent, README "Consumer"): the container stays stopped across loop iterations and
runner restarts until ``car sync retry`` clears it.

The file is the typed ``CurrentApply`` (docs/FORMAT.md "current_apply.json") and an
apply moves it through named steps, so a step out of order is a clear error instead of
a wrong state on disk::

    (any) --begin_prepare--> preparing --begin_commit--> applying --mark_applied--> applied
    preparing --mark_failed--> failed_preflight | failed_rolled_back
    applying --mark_failed(rolled_back=True)--> failed_rolled_back
    applying --mark_uncertain--> uncertain

``begin_prepare`` is allowed from any state: a new apply supersedes whatever the last
one ended as (one cut short mid-commit is resolved by start-up recovery first). Start-up
recovery itself records what the apply journal proved, whatever this file said
(``finish_by_recovery``, ``roll_back_by_recovery``, ``enter_halt``).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SyncError
from ..fsutil import atomic_write_json, fsync_dir
from . import constants as C
from .state_fields import read_int, read_number, read_str

HALT_UNREADABLE = "halt.json is unreadable"


class IllegalTransition(SyncError):
    """An apply step out of order (a bug): ``current_apply.json`` is left as it was."""


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True, slots=True)
class CurrentApply:
    """``current_apply.json``; the default record is "no apply yet" (a fresh consumer, or
    a file too damaged to read: a damaged file must not block applies forever)."""

    state: str | None = None  # one of C.APPLY_STATES
    cid: str = ""
    version: int | None = None
    started_timestamp: float | None = None
    updated_timestamp: float | None = None
    error: str | None = None
    stage: str | None = None  # in a failed state: where it failed (a stage label)
    applied_cid: str | None = None  # the durably applied CID, carried across every state
    applied_version: int | None = None
    applied_timestamp: float | None = None

    # --- the consumer's steps (checked) ---------------------------------------------------
    def begin_prepare(self, cid: str, version: int | None, *, now: float) -> CurrentApply:
        """Preflight of ``cid`` begins (the app still runs); allowed from any state."""
        return self.with_state(C.APPLY_STATE_PREPARING, cid=cid, version=version, now=now)

    def begin_commit(self, *, now: float) -> CurrentApply:
        """The prepared apply starts writing to the volumes (the app is stopped)."""
        self._expect("begin the commit", C.APPLY_STATE_PREPARING)
        return self.with_state(C.APPLY_STATE_APPLYING, cid=self.cid, version=self.version, now=now)

    def mark_applied(self, *, now: float) -> CurrentApply:
        """The commit completed: its CID becomes the durably applied one."""
        self._expect("mark the apply applied", C.APPLY_STATE_APPLYING)
        return self.with_state(C.APPLY_STATE_APPLIED, cid=self.cid, version=self.version, now=now)

    def mark_failed(
        self, *, rolled_back: bool, error: str, stage: str | None, now: float
    ) -> CurrentApply:
        """The apply failed: before any volume write (``failed_preflight``, only while
        preparing) or with its writes undone (``failed_rolled_back``)."""
        if rolled_back:
            state = C.APPLY_STATE_FAILED_ROLLED_BACK
            self._expect(f"mark the apply {state}", C.APPLY_STATE_PREPARING, C.APPLY_STATE_APPLYING)
        else:
            state = C.APPLY_STATE_FAILED_PREFLIGHT
            self._expect(f"mark the apply {state}", C.APPLY_STATE_PREPARING)
        return self.with_state(
            state, cid=self.cid, version=self.version, now=now, error=error, stage=stage
        )

    def mark_uncertain(self, error: str, *, now: float) -> CurrentApply:
        """The commit failed and its rollback could not prove the volumes consistent."""
        self._expect("mark the apply uncertain", C.APPLY_STATE_APPLYING)
        return self.with_state(
            C.APPLY_STATE_UNCERTAIN,
            cid=self.cid,
            version=self.version,
            now=now,
            error=error,
            stage=C.STAGE_COMMIT,
        )

    def _expect(self, step: str, *states: str) -> None:
        if self.state not in states:
            raise IllegalTransition(
                f"cannot {step} of {self.cid or 'no snapshot'}: current_apply.json says "
                f"{self.state or 'no apply'}, not {' or '.join(states)}"
            )

    # --- any state (start-up recovery, or a scene set by hand) ------------------------------
    def with_state(
        self,
        state: str,
        *,
        cid: str,
        version: int | None,
        now: float,
        error: str | None = None,
        stage: str | None = None,
    ) -> CurrentApply:
        """This record after ``state`` was recorded, whatever it said before.

        ``applied_*`` are carried over, and become ``cid``/``version``/``now`` when
        ``state`` is ``applied``. ``started_timestamp`` is kept while the CID stays the same.

        Raises:
            ValueError: ``state`` is not one of docs/FORMAT.md's states.
        """
        if state not in C.APPLY_STATES:
            raise ValueError(f"unknown apply state {state!r}")
        same_apply = self.cid == cid and state != C.APPLY_STATE_PREPARING
        applied = state == C.APPLY_STATE_APPLIED
        return CurrentApply(
            state=state,
            cid=cid,
            version=version,
            started_timestamp=self.started_timestamp if same_apply else now,
            updated_timestamp=now,
            error=error,
            stage=stage,
            applied_cid=cid if applied else self.applied_cid,
            applied_version=version if applied else self.applied_version,
            applied_timestamp=now if applied else self.applied_timestamp,
        )

    # --- JSON ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "cid": self.cid,
            "version": self.version,
            "started_timestamp": self.started_timestamp,
            "updated_timestamp": self.updated_timestamp,
            "error": self.error,
            "stage": self.stage,
            "applied_cid": self.applied_cid,
            "applied_version": self.applied_version,
            "applied_timestamp": self.applied_timestamp,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> CurrentApply:
        """Read tolerantly: a missing or ill-typed field (an unknown state) is its default,
        unknown fields are ignored (the next write drops them)."""
        state = read_str(raw, "state")
        return cls(
            state=state if state in C.APPLY_STATES else None,
            cid=read_str(raw, "cid") or "",
            version=read_int(raw, "version"),
            started_timestamp=read_number(raw, "started_timestamp"),
            updated_timestamp=read_number(raw, "updated_timestamp"),
            error=read_str(raw, "error"),
            stage=read_str(raw, "stage"),
            applied_cid=read_str(raw, "applied_cid") or None,
            applied_version=read_int(raw, "applied_version"),
            applied_timestamp=read_number(raw, "applied_timestamp"),
        )


@dataclass(frozen=True, slots=True)
class Halt:
    """``halt.json`` (docs/FORMAT.md "Host-side layout"): why the instance is halted."""

    reason: str | None
    cid: str | None = None
    halted_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "cid": self.cid, "halted_at": self.halted_at}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Halt:
        return cls(read_str(raw, "reason"), read_str(raw, "cid"), read_number(raw, "halted_at"))


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
    def load(self) -> CurrentApply:
        """The recorded state; ``CurrentApply()`` (no apply) if absent or unreadable."""
        raw = _read_json(self.current_path)
        return CurrentApply.from_dict(raw) if raw is not None else CurrentApply()

    def current(self) -> dict[str, Any] | None:
        """``current_apply.json`` as JSON (as its record reads it), or None if absent;
        for tests and diagnostics (code reads ``load()``)."""
        return self.load().to_dict() if os.path.lexists(self.current_path) else None

    def applied_cid(self) -> str | None:
        """The CID whose apply was durably completed, or None (fresh consumer)."""
        return self.load().applied_cid

    # The consumer's steps: load, move (``CurrentApply`` refuses a step out of order),
    # write durably. Each raises IllegalTransition or OSError with the file intact.
    def begin_prepare(self, cid: str, version: int | None, *, now: float) -> CurrentApply:
        return self._write(self.load().begin_prepare(cid, version, now=now))

    def begin_commit(self, *, now: float) -> CurrentApply:
        return self._write(self.load().begin_commit(now=now))

    def mark_applied(self, *, now: float) -> CurrentApply:
        return self._write(self.load().mark_applied(now=now))

    def mark_failed(
        self, *, rolled_back: bool, error: str, stage: str | None, now: float
    ) -> CurrentApply:
        step = self.load().mark_failed(rolled_back=rolled_back, error=error, stage=stage, now=now)
        return self._write(step)

    def mark_uncertain(self, error: str, *, now: float) -> CurrentApply:
        return self._write(self.load().mark_uncertain(error, now=now))

    def finish_by_recovery(self, cid: str, version: int | None, *, now: float) -> CurrentApply:
        """Start-up recovery finished ``cid``'s commit (the journal said committed)."""
        return self.set_state(C.APPLY_STATE_APPLIED, cid=cid, version=version, now=now)

    def roll_back_by_recovery(
        self, cid: str, version: int | None, error: str, *, now: float
    ) -> CurrentApply:
        """Start-up recovery undid (or found nothing written by) an interrupted apply."""
        return self.set_state(
            C.APPLY_STATE_FAILED_ROLLED_BACK,
            cid=cid,
            version=version,
            now=now,
            error=error,
            stage=C.STAGE_COMMIT,
        )

    def set_state(
        self,
        state: str,
        *,
        cid: str,
        version: int | None,
        now: float,
        error: str | None = None,
        stage: str | None = None,
    ) -> CurrentApply:
        """Durably record ``state`` whatever the file said (``CurrentApply.with_state``).

        Raises:
            ValueError: ``state`` is not one of docs/FORMAT.md's states.
            OSError: the write failed (the previous file is intact).
        """
        step = self.load().with_state(
            state, cid=cid, version=version, now=now, error=error, stage=stage
        )
        return self._write(step)

    def _write(self, record: CurrentApply) -> CurrentApply:
        """Atomic write + fsync of the directory, so the state survives a crash."""
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.current_path, record.to_dict())
        fsync_dir(self.dir)
        return record

    # --- halt.json ----------------------------------------------------------------------
    def enter_halt(self, cid: str, version: object, reason: str, *, now: float) -> None:
        """State ``uncertain`` and ``halt.json``, from any state: start-up recovery could
        not prove the volumes consistent."""
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
        atomic_write_json(self.halt_path, Halt(reason, cid, now).to_dict())
        fsync_dir(self.dir)

    def is_halted(self) -> bool:
        return os.path.lexists(self.halt_path)

    def halt_reason(self) -> str | None:
        """The halt reason, or None when not halted (an unreadable file still halts)."""
        data = _read_json(self.halt_path)
        if data is None:
            return None
        reason = Halt.from_dict(data).reason
        return reason if reason is not None else HALT_UNREADABLE

    def clear_halt(self) -> bool:
        """Leave the halt (``car sync retry``); True if there was one."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.halt_path)
            fsync_dir(self.dir)
            return True
        return False
