"""The host side of loop volumes: running the tools and reading kernel state.

Every external command (fallocate, mkfs.ext4, losetup, mount, umount, e2fsck, resize2fs,
blkid, dumpe2fs) goes through ``run()``, which turns a failure into a ``VolumeError``
carrying the image, the device and a one-line summary of stderr. What is mounted and
which loop device backs which file are read from the kernel (/proc/self/mountinfo,
``losetup``) every time, never cached: after a crash the kernel is the only truth.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import VolumeError

# mkfs/e2fsck/resize2fs on a large image can take minutes; a hung tool must not hang us.
TOOL_TIMEOUT_SECONDS = 900
_STDERR_SUMMARY_CHARS = 300
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")
_DELETED_SUFFIX = " (deleted)"


@dataclass(frozen=True, slots=True)
class Mount:
    """One mount from /proc/self/mountinfo."""

    source: str
    target: Path
    fs_type: str


@dataclass(frozen=True, slots=True)
class LoopDevice:
    """An attached loop device and the file behind it (None if it has none)."""

    name: str
    back_file: Path | None


def summarize(text: str) -> str:
    """The last non-empty lines of a tool's output, on one line, kept short."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    summary = " | ".join(lines[-3:])
    if len(summary) > _STDERR_SUMMARY_CHARS:
        summary = "..." + summary[-_STDERR_SUMMARY_CHARS:]
    return summary or "no output"


def run(
    args: Sequence[str],
    *,
    image: Path | None = None,
    device: str | None = None,
    hint: str | None = None,
    ok_codes: Sequence[int] = (0,),
) -> subprocess.CompletedProcess[str]:
    """Run one host tool; return its result if the exit code is in ``ok_codes``.

    Raises:
        VolumeError: the tool is missing, timed out or exited with another code.
    """
    where = {"image": str(image) if image else None, "device": device}
    # C locale so the output we parse (dumpe2fs, e2fsck) is stable.
    env = {**os.environ, "LC_ALL": "C"}
    try:
        result = subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            env=env,
            timeout=TOOL_TIMEOUT_SECONDS,
            check=False,
        )
    except FileNotFoundError:
        raise VolumeError(
            f"{args[0]} not found",
            **where,
            hint="install util-linux and e2fsprogs; loop volumes need them",
        ) from None
    except subprocess.TimeoutExpired:
        raise VolumeError(
            f"{args[0]} did not finish within {TOOL_TIMEOUT_SECONDS}s", **where, hint=hint
        ) from None
    if result.returncode not in ok_codes:
        detail = summarize(result.stderr or result.stdout)
        raise VolumeError(
            f"{' '.join(args[:2])} failed (exit {result.returncode}): {detail}",
            **where,
            hint=hint,
        )
    return result


def _unescape(field: str) -> str:
    """Undo the kernel's octal escapes in mountinfo (space is \\040)."""
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    """Parse /proc/self/mountinfo (mount point is field 5; fs type and source follow "-")."""
    mounts: list[Mount] = []
    for line in text.splitlines():
        fields = line.split(" ")
        if "-" not in fields or len(fields) < 5:
            continue
        sep = fields.index("-")
        if len(fields) < sep + 3:
            continue
        mounts.append(
            Mount(
                source=_unescape(fields[sep + 2]),
                target=Path(_unescape(fields[4])),
                fs_type=fields[sep + 1],
            )
        )
    return mounts


def mounts() -> list[Mount]:
    """Every mount visible to this process, in mount order."""
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as handle:
        return parse_mountinfo(handle.read())


def mount_at(path: Path) -> Mount | None:
    """The topmost mount whose mount point is exactly ``path`` (resolved), if any."""
    target = path.resolve()
    found = None
    for mount in mounts():
        if mount.target == target:
            found = mount
    return found


def parse_losetup_json(text: str) -> list[LoopDevice]:
    """Parse ``losetup -J -l -O NAME,BACK-FILE`` (empty output means no devices)."""
    if not text.strip():
        return []
    devices: list[LoopDevice] = []
    for entry in json.loads(text).get("loopdevices", []):
        back = entry.get("back-file")
        if back and back.endswith(_DELETED_SUFFIX):
            back = back[: -len(_DELETED_SUFFIX)]
        devices.append(LoopDevice(name=entry["name"], back_file=Path(back) if back else None))
    return devices


def loop_devices() -> list[LoopDevice]:
    """Every attached loop device with its backing file."""
    result = run(["losetup", "--json", "--list", "--output", "NAME,BACK-FILE"])
    return parse_losetup_json(result.stdout)


def devices_for(image: Path) -> list[str]:
    """Loop devices attached to ``image`` (matched by inode, like ``losetup -j``)."""
    if not image.exists():
        return []
    result = run(
        ["losetup", "--list", "--noheadings", "--output", "NAME", "--associated", str(image)],
        image=image,
    )
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def probe_fs_type(image: Path) -> str | None:
    """The filesystem type found in ``image`` by a low-level probe, or None if none.

    Raises:
        VolumeError: blkid itself failed (anything but "no signature found").
    """
    result = run(
        ["blkid", "-p", "-o", "value", "-s", "TYPE", str(image)],
        image=image,
        ok_codes=(0, 2),  # 2 = no signature found
    )
    return result.stdout.strip() or None


def ext_fs_lags_image(image: Path, image_bytes: int) -> bool:
    """True if the ext filesystem is at least one block group smaller than its image.

    That only happens when a grow was cut off between fallocate and resize2fs; the tail
    smaller than one group that mkfs may leave unused does not count.

    Raises:
        VolumeError: dumpe2fs failed.
    """
    result = run(["dumpe2fs", "-h", str(image)], image=image)
    fields: dict[str, int] = {}
    for line in result.stdout.splitlines():
        key, sep, value = line.partition(":")
        if sep and key in ("Block count", "Block size", "Blocks per group"):
            fields[key] = int(value.strip())
    if len(fields) != 3:
        return False
    fs_bytes = fields["Block count"] * fields["Block size"]
    return fs_bytes + fields["Blocks per group"] * fields["Block size"] <= image_bytes
