"""Validated volume entries of a runner config: FIXED_SIZE_VOLUMES and FILE_VOLUMES.

The runner config model embeds these, so a bad entry is reported with its key path and
the field's description ("FIXED_SIZE_VOLUMES.data.SIZE: must be a size like ..., got
"10Q"", README "Config keys"). Checks that raise ``PydanticCustomError`` keep that
description in the message; a plain ``ValueError`` would replace it with pydantic's own text.
"""

from __future__ import annotations

import posixpath
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, StrictBool, StrictStr, field_validator
from pydantic_core import PydanticCustomError

from ..layout import SYSTEM_VOLUME_MOUNT, SYSTEM_VOLUME_NAME
from .sizes import parse_size

__all__ = [
    "FileVolumeSpec",
    "FixedVolumeSpec",
    "normalize_container_path",
    "parse_size",
    "validate_volume_name",
]

# Volume names become host file and directory names (images/<name>.img, mounts/<name>/).
VOLUME_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
VOLUME_NAME_RULE = "1-64 characters of letters, digits, '_', '.', '-', starting alnum"

_PATH_DESCRIPTION = (
    "an absolute container path (starting with /) other than / and outside "
    f"{SYSTEM_VOLUME_MOUNT}, without '..'"
)
_ID = Annotated[int, Strict(), Field(ge=0, le=2**32 - 2)]


def validate_volume_name(name: str) -> str:
    """Return ``name`` if it is safe as a host file name and not the system volume's.

    Raises:
        ValueError: the name has unsafe characters or is reserved.
    """
    if not VOLUME_NAME_RE.match(name):
        raise ValueError(f"volume name {name!r} must be {VOLUME_NAME_RULE}")
    if name == SYSTEM_VOLUME_NAME:
        raise ValueError(f"volume name {name!r} is reserved for the system volume /r1en_system")
    return name


def normalize_container_path(text: str) -> str:
    """Normalise an app-side mount path ("/data/" -> "/data").

    Raises:
        ValueError: the path is relative, "/", contains "..", a NUL byte, or lies in the
            system volume (which the runner owns).
    """
    if not text.startswith("/") or "\x00" in text:
        raise ValueError(f"container path {text!r} must be absolute")
    if ".." in text.split("/"):
        raise ValueError(f"container path {text!r} must not contain '..'")
    path = posixpath.normpath(text)
    if path.startswith("//"):  # normpath keeps a leading "//" (POSIX allows it)
        path = "/" + path.lstrip("/")
    if path == "/":
        raise ValueError("container path must not be /")
    if path == SYSTEM_VOLUME_MOUNT or path.startswith(SYSTEM_VOLUME_MOUNT + "/"):
        raise ValueError(f"container path {text!r} is inside the system volume")
    return path


def _checked_path(value: str) -> str:
    try:
        return normalize_container_path(value)
    except ValueError as exc:
        raise PydanticCustomError("container_path", str(exc)) from None


class FixedVolumeSpec(BaseModel):
    """One FIXED_SIZE_VOLUMES entry: a fixed-size ext4 loop volume (README, "Volumes")."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    size: StrictStr = Field(
        alias="SIZE",
        description='a size string like "100M", "1G", "512K" or a byte count, at least 1M',
    )
    mounting_point: StrictStr = Field(alias="MOUNTING_POINT", description=_PATH_DESCRIPTION)
    fs_type: Literal["ext4"] = Field("ext4", alias="FS_TYPE", description='"ext4"')
    owner_uid: _ID | None = Field(
        None, alias="OWNER_UID", description="null or an integer user id >= 0"
    )
    owner_gid: _ID | None = Field(
        None, alias="OWNER_GID", description="null or an integer group id >= 0"
    )
    force_recreate: StrictBool = Field(
        False, alias="FORCE_RECREATE", description="a JSON boolean (true/false)"
    )

    @field_validator("size")
    @classmethod
    def _check_size(cls, value: str) -> str:
        try:
            parse_size(value)
        except ValueError as exc:
            raise PydanticCustomError("volume_size", str(exc)) from None
        return value.strip()

    @field_validator("mounting_point")
    @classmethod
    def _check_mounting_point(cls, value: str) -> str:
        return _checked_path(value)

    @property
    def size_bytes(self) -> int:
        """SIZE in bytes."""
        return parse_size(self.size)


class FileVolumeSpec(BaseModel):
    """One FILE_VOLUMES entry: a file written on the host, bound read-only."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    content: StrictStr = Field(description="a string (the file's text)")
    mounting_point: StrictStr = Field(description=_PATH_DESCRIPTION)

    @field_validator("mounting_point")
    @classmethod
    def _check_mounting_point(cls, value: str) -> str:
        return _checked_path(value)
