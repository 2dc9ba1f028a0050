"""Undoing (or finishing) a journaled apply: in-process after an error, or at start-up.

The commit (``sync/apply.py``) leaves one marker per executed operation ``n`` in the
volume's per-apply backup dir ``<volume root>/.car-sync-<apply id>/``:

- ``n.bak``: the entry that was at the target before (moved there by ``rename``);
- ``n.new``: the target did not exist; op ``n`` created it;
- ``n.meta``: the target was an existing directory; its mode/owner/times as JSON.

A marker is made *before* the change it describes, so undoing op ``n`` is idempotent:
restore ``n.meta``; if ``n.bak`` or ``n.new`` exists remove whatever is at the target
(it can only be op ``n``'s creation, since later ops were undone first) and rename
``n.bak`` back. Ops are undone in reverse order. The volume is proven consistent when
every marker has been consumed and the backup dirs are gone; anything else is
``ApplyFailed(rolled_back=False)`` and the caller halts (README, "Consumer").

Crash safety relies on ``rename``/``unlink`` being atomic and, for power loss, on the
filesystem committing metadata changes in order (ext4's default ``data=ordered``).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import stat
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from ..errors import ApplyFailed
from . import constants as C
from .journal import STATE_COMMITTED, STATE_ROLLING_BACK, Journal, JournalHeader, PlannedOp

RECOVERY_NONE = "none"
RECOVERY_ROLLED_BACK = "rolled_back"
RECOVERY_FINISHED = "finished"


def marker(backup_dir: str, index: int, suffix: str) -> str:
    return os.path.join(backup_dir, f"{index}.{suffix}")


def _remove_entry(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        os.rmdir(path)  # ENOTEMPTY: something we did not journal is inside -> uncertain
    else:
        os.unlink(path)


def _restore_meta(path: str, meta_file: str) -> None:
    with open(meta_file, encoding="utf-8") as handle:
        meta = json.load(handle)
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode):
        os.chown(path, meta["uid"], meta["gid"], follow_symlinks=False)
        os.chmod(path, meta["mode"])
        os.utime(path, ns=(meta["atime_ns"], meta["mtime_ns"]), follow_symlinks=False)
    os.unlink(meta_file)


def undo_op(op: PlannedOp, backup_dir: str) -> None:
    """Undo one operation from its markers (idempotent; a no-op if it never ran)."""
    meta = marker(backup_dir, op.index, "meta")
    bak = marker(backup_dir, op.index, "bak")
    new = marker(backup_dir, op.index, "new")
    if os.path.lexists(meta):
        _restore_meta(op.host_path, meta)
    has_bak = os.path.lexists(bak)
    has_new = os.path.lexists(new)
    if has_bak or has_new:
        _remove_entry(op.host_path)
    if has_bak:
        os.rename(bak, op.host_path)
    if has_new:
        os.unlink(new)


def rollback(journal: Journal, header: JournalHeader, log: logging.Logger) -> None:
    """Undo every journaled operation in reverse and remove the journal.

    Raises:
        ApplyFailed: (``rolled_back=False``) an undo failed or markers remain: the
            volume cannot be proven consistent; the caller must halt.
    """
    try:
        journal.write_header(replace(header, state=STATE_ROLLING_BACK))
    except OSError as exc:
        raise _uncertain(f"journal not writable: {exc.strerror or exc}") from None
    errors: list[str] = []
    try:
        ops = list(journal.ops())  # rollback is rare; memory ~ ops is acceptable here
    except (OSError, ValueError, TypeError) as exc:
        raise _uncertain(f"journal plan unreadable: {exc}") from None
    for op in reversed(ops):
        backup_dir = header.backup_dirs.get(op.volume)
        if backup_dir is None or not os.path.isdir(backup_dir):
            continue  # the backup dir was never created: this op never ran
        try:
            undo_op(op, backup_dir)
        except OSError as exc:
            errors.append(f"undo of {op.container_path!r} failed: {exc.strerror or exc}")
        except Exception as exc:  # e.g. a damaged n.meta marker: not proven, so halt
            errors.append(f"undo of {op.container_path!r} failed: {type(exc).__name__}: {exc}")
    for backup_dir in header.backup_dirs.values():
        try:
            os.rmdir(backup_dir)
        except FileNotFoundError:
            pass
        except OSError as exc:
            left = "files remain" if exc.errno == errno.ENOTEMPTY else str(exc)
            errors.append(f"backup dir of apply {header.apply_id} not cleared: {left}")
    if errors:
        log.error("rollback of %s incomplete: %s", header.cid, "; ".join(errors))
        raise _uncertain("; ".join(errors[:5]))
    try:
        journal.remove()
    except OSError as exc:
        # The volume is restored; a journal left behind only makes the next start roll
        # back again, which finds nothing left to undo.
        log.error("rolled back %s, but the journal could not be removed: %s", header.cid, exc)
    log.info("rolled back apply of %s (%d planned operations)", header.cid, len(ops))


def finish(journal: Journal, header: JournalHeader, log: logging.Logger) -> bool:
    """After ``committed``: drop the backups (old data) and the journal.

    Returns:
        True when nothing is left; False if a backup dir could not be removed (the
        journal is kept, so the next ``recover`` retries before the app starts).
    """
    ok = True
    for backup_dir in header.backup_dirs.values():
        try:
            shutil.rmtree(backup_dir)
        except FileNotFoundError:
            pass
        except OSError as exc:
            ok = False
            log.error("could not remove backup dir of apply %s: %s", header.apply_id, exc)
    if ok:
        journal.remove()
    return ok


def recover(journal: Journal, log: logging.Logger) -> tuple[str, JournalHeader | None]:
    """Resolve an unfinished apply at start-up, before the container starts.

    Returns:
        (outcome, header): ``none`` (nothing was written), ``rolled_back`` or
        ``finished``; header is the journal's (None for ``none``).

    Raises:
        ApplyFailed: (``rolled_back=False``) the journal is unreadable or the rollback
            could not prove the volume consistent.
    """
    try:
        header = journal.read_header()
    except (OSError, ValueError) as exc:
        raise _uncertain(f"journal unreadable: {exc}") from None
    if header is None:
        if journal.has_plan():  # staged but never committed: no volume was touched
            journal.remove()
        return RECOVERY_NONE, None
    if header.state == STATE_COMMITTED:
        if not finish(journal, header, log):
            raise ApplyFailed(
                "applied, but the per-apply backup dir could not be removed",
                stage=C.STAGE_COMMIT,
                rolled_back=False,
            )
        log.info("finished interrupted apply of %s", header.cid)
        return RECOVERY_FINISHED, header
    rollback(journal, header, log)
    return RECOVERY_ROLLED_BACK, header


# What ApplyTransaction names its backup dirs (RESERVED_PREFIX + secrets.token_hex(6))
# and the markers it puts at their top level; nothing else is ever taken for ours.
_BACKUP_DIR_NAME = re.compile(r"\.car-sync-[0-9a-f]{12}")
_MARKER_NAME = re.compile(r"[0-9]+\.(bak|new|meta)")


def sweep_orphan_backup_dirs(volume_roots: Iterable[Path], log: logging.Logger) -> list[str]:
    """Remove per-apply backup dirs no journal names any more (none may stay).

    Call only once the journal is resolved (rolled back or finished): every backup dir
    left then belongs to an apply whose journal is gone, e.g. one an older runner
    overwrote after a commit that neither finished nor rolled back. Without its plan
    its markers cannot be put back; they are old bytes the app must not see.

    Only a real directory (not a link) directly at a volume root, named exactly as
    the commit names them, owned by this process's user (the app cannot forge that
    unless it runs as root) and holding only marker names is removed (``rmtree``
    never follows a link inside). Anything else is left alone.

    Returns:
        The removed paths.
    """
    removed: list[str] = []
    for root in volume_roots:
        try:
            names = os.listdir(root)
        except OSError:
            continue  # an absent or unreadable volume has nothing of ours to sweep
        for name in sorted(n for n in names if _BACKUP_DIR_NAME.fullmatch(n)):
            path = os.path.join(root, name)
            if not _is_our_backup_dir(path):
                log.warning("left %s in volume %s alone: not a backup dir of ours", name, root)
                continue
            try:
                shutil.rmtree(path)
            except OSError as exc:
                log.error("could not remove orphan backup dir %s: %s", path, exc)
                continue
            removed.append(path)
            log.warning("removed orphan backup dir %s of an unfinished earlier apply", path)
    return removed


def _is_our_backup_dir(path: str) -> bool:
    try:
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            return False
        return all(_MARKER_NAME.fullmatch(n) for n in os.listdir(path))
    except OSError:
        return False


def _uncertain(message: str) -> ApplyFailed:
    return ApplyFailed(
        f"rollback cannot prove the volume consistent: {message}",
        stage=C.STAGE_COMMIT,
        rolled_back=False,
        hint="inspect the volume, then run `car sync retry INSTANCE`",
    )


def save_meta(path: str, st: os.stat_result) -> None:
    """Write an existing directory's metadata to ``path`` (an ``n.meta`` marker)."""
    meta = {
        "mode": stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
        "atime_ns": st.st_atime_ns,
        "mtime_ns": st.st_mtime_ns,
    }
    Path(path).write_text(json.dumps(meta), encoding="utf-8")


def touch(path: str) -> None:
    """Create an empty ``n.new`` marker (O_EXCL: a marker is made once)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    os.close(fd)


__all__ = [
    "RECOVERY_FINISHED",
    "RECOVERY_NONE",
    "RECOVERY_ROLLED_BACK",
    "finish",
    "marker",
    "recover",
    "rollback",
    "save_meta",
    "sweep_orphan_backup_dirs",
    "touch",
    "undo_op",
]
