"""VolumeBinding: one host directory bound into the app container.

The runner's volume mixins produce these; Docker gets them as binds and the sync path
resolver (docs/FORMAT.md, "Archive paths") decides from ``kind`` which ones sync may read or write.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

VolumeKind = Literal["fixed", "legacy", "file", "system"]

# Only these kinds hold app data that volume-sync may capture or apply (rule 6 of
# docs/FORMAT.md, "Archive paths").
SYNCABLE_KINDS: frozenset[str] = frozenset({"fixed", "legacy"})


@dataclass(frozen=True, slots=True)
class VolumeBinding:
    """A bind of ``host_root`` at ``container_path`` (absolute, normalised) in the app."""

    name: str
    kind: VolumeKind
    host_root: Path
    container_path: str
    read_only: bool = False

    @property
    def syncable(self) -> bool:
        """True for fixed-size and legacy volumes of this instance."""
        return self.kind in SYNCABLE_KINDS

    def to_docker_bind(self) -> tuple[str, dict[str, str]]:
        """The docker-py ``volumes=`` entry for this bind."""
        return str(self.host_root), {
            "bind": self.container_path,
            "mode": "ro" if self.read_only else "rw",
        }
