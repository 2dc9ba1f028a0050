"""``runner.json``: what a runner says about its instance, for ``car sync status``.

Written by the runner at each start (``sync/manager.py``) and read by the CLI, which may
run while the runner is stopped (docs/FORMAT.md "Host-side layout"). A file that is
missing, damaged, or written by another version reads as "unknown" field by field, so
``car sync status`` always answers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..fsutil import atomic_write_json
from .state_fields import read_number, read_str


@dataclass(frozen=True, slots=True)
class RunnerState:
    """The content of ``runner.json``; every field None when unknown."""

    instance_id: str | None = None
    node_id: str | None = None
    role: str | None = None  # provider, consumer, or None: sync disabled
    key: str | None = None
    blob_store: str | None = None  # the store's describe(): secrets redacted
    registry: str | None = None
    sync_disabled_reason: str | None = None
    system_volume_error: str | None = None
    started_timestamp: float | None = None
    records: str | None = None  # signed/unsigned (provider), verified or not (consumer)

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "node_id": self.node_id,
            "role": self.role,
            "key": self.key,
            "blob_store": self.blob_store,
            "registry": self.registry,
            "sync_disabled_reason": self.sync_disabled_reason,
            "system_volume_error": self.system_volume_error,
            "started_timestamp": self.started_timestamp,
            "records": self.records,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RunnerState:
        """Read tolerantly: a missing or ill-typed field is None, unknown ones are ignored."""
        return cls(
            instance_id=read_str(raw, "instance_id"),
            node_id=read_str(raw, "node_id"),
            role=read_str(raw, "role"),
            key=read_str(raw, "key"),
            blob_store=read_str(raw, "blob_store"),
            registry=read_str(raw, "registry"),
            sync_disabled_reason=read_str(raw, "sync_disabled_reason"),
            system_volume_error=read_str(raw, "system_volume_error"),
            started_timestamp=read_number(raw, "started_timestamp"),
            records=read_str(raw, "records"),
        )

    def save(self, path: Path) -> None:
        """Write ``path`` atomically (its directory must exist).

        Raises:
            OSError: the write failed; the previous file is intact.
        """
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> RunnerState:
        """The state in ``path``; all unknown if it is missing or unreadable."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        return cls.from_dict(raw) if isinstance(raw, dict) else cls()
