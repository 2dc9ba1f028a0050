"""Staging: the validated, journaled plan of an apply, made while the app still runs.

Design choice (the "stage" step of README, "Consumer"). Staging does **not** extract a copy
of the data. It streams the verified archive once, validates every member
(``MemberValidator``), writes the plan of operations to the journal
(``sync_state/journal.plan.jsonl``, fsynced) and checks that the data would fit each target
volume. The commit then streams the same archive again and writes each file straight to its
place.

Why not extract into a staging directory and rename at commit time:
- a staging dir on the same filesystem as a fixed-size volume must be *inside* that
  volume (the whole filesystem is the app's), so the app would see and could tamper
  with half-written snapshot data while it runs, and a crash would leave it there;
- staging outside the volume (another filesystem) doubles the host disk used and
  makes the commit a copy anyway, i.e. the same downtime as writing from the archive;
- writing from the archive at commit costs one extra decompression of the archive
  (zstd: about a second per GiB) and nothing else.
For a tar, the per-apply backup dir of the commit is the only runner file ever in a
volume, and it exists only while the app is stopped. A chunked apply writes only the
changed files, so staging those in the volume is not a full copy: it does so, in a
directory the commit checks before trusting it (``sync/volume_staging.py``).

Free space: every planned byte counts as new (replaced files survive as backups until
the commit ends), rounded up to the volume's block size, plus one block per directory
and a small reserve; inodes are checked too. Reading stops at the first overflow.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import SnapshotInvalid
from . import constants as C
from .archive_read import iter_members, open_archive
from .crypto.framing import Sealer
from .journal import KIND_FILE, Journal, PlannedOp
from .paths import PathResolver
from .preflight import ConsumerLimits, MemberValidator, NoSpace
from .records import Manifest, SyncRecord

# Left free on every volume after an apply, so the app can still write a little.
SPACE_RESERVE_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class StagedPlan:
    """What staging produced: the plan (in the journal) and its totals."""

    archive: Path
    archive_format: str
    ops: int
    members: int
    unpacked_bytes: int
    skipped: int
    volumes: tuple[str, ...]
    extracted_paths: tuple[str, ...]


class SpaceBudget:
    """Running bytes/inodes needed per volume against its free space (statvfs)."""

    def __init__(self) -> None:
        self._free: dict[str, tuple[int, int, int]] = {}  # root -> (bytes, inodes, block)
        self._need: dict[str, list[int]] = {}

    def add(self, op: PlannedOp) -> None:
        """Count one more planned entry on ``op.volume``.

        Raises:
            NoSpace: the volume's free bytes or inodes would be exceeded.
        """
        if op.volume not in self._free:
            st = os.statvfs(op.volume)
            self._free[op.volume] = (st.f_bavail * st.f_frsize, st.f_favail, st.f_frsize or 4096)
            self._need[op.volume] = [SPACE_RESERVE_BYTES, 0]
        free_bytes, free_inodes, block = self._free[op.volume]
        need = self._need[op.volume]
        blocks = -(-op.size // block) if op.kind == KIND_FILE else 1
        need[0] += blocks * block
        need[1] += 1
        if need[0] > free_bytes or (free_inodes and need[1] > free_inodes):
            raise NoSpace(
                f"snapshot does not fit the volume of {op.container_path!r}: needs more than "
                f"{free_bytes} free bytes / {free_inodes} free inodes",
                stage=C.STAGE_EXTRACT,
            )

    @property
    def volumes(self) -> tuple[str, ...]:
        return tuple(self._free)


def _check_manifest_totals(manifest: Manifest, members: int, unpacked_bytes: int) -> None:
    """The archive holds what its manifest says (when it says it).

    A tar cut at a member boundary reads as a complete, shorter archive (stream-mode
    tarfile takes the end of the data for the end of the archive), so the totals the
    provider recorded are the only way to tell it is incomplete.

    Raises:
        SnapshotInvalid: (stage ``extract``) a total differs.
    """
    if manifest.members is not None and members != manifest.members:
        raise SnapshotInvalid(
            f"archive is incomplete or altered: it holds {members} members, "
            f"manifest.members says {manifest.members}",
            stage=C.STAGE_EXTRACT,
        )
    if manifest.unpacked_bytes is not None and unpacked_bytes != manifest.unpacked_bytes:
        raise SnapshotInvalid(
            f"archive is incomplete or altered: its files hold {unpacked_bytes} unpacked "
            f"bytes, manifest.unpacked_bytes says {manifest.unpacked_bytes}",
            stage=C.STAGE_EXTRACT,
        )


def stage_archive(
    archive: Path,
    record: SyncRecord,
    resolver: PathResolver,
    limits: ConsumerLimits,
    journal: Journal,
    log: logging.Logger,
    sealer: Sealer | None = None,
) -> StagedPlan:
    """Validate every member of ``archive`` and write the plan to ``journal``.

    Nothing in any volume is written. On failure no plan is left behind.

    Raises:
        SnapshotInvalid: a member is invalid, a limit is crossed, or the member count or
            unpacked size differs from the manifest's (stage ``extract``).
        NoSpace: the data would not fit a target volume.
    """
    manifest = record.manifest
    validator = MemberValidator(manifest.archive_paths, resolver, limits, log)
    budget = SpaceBudget()
    ops = 0
    with (
        open_archive(archive, manifest.archive_format, sealer) as (tar, _reader),
        journal.plan_writer() as plan,
    ):
        for ordinal, member in enumerate(iter_members(tar)):
            for op in validator.check(ordinal, member):
                budget.add(op)
                plan.write(op.to_line())
                ops += 1
        _check_manifest_totals(manifest, validator.members, validator.unpacked_bytes)
    return StagedPlan(
        archive=archive,
        archive_format=manifest.archive_format,
        ops=ops,
        members=validator.members,
        unpacked_bytes=validator.unpacked_bytes,
        skipped=validator.skipped,
        volumes=budget.volumes,
        extracted_paths=tuple(manifest.archive_paths),
    )
