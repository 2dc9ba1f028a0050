"""SyncConfig: the validated ``SYNC`` block of a runner config (README, "For operators").

Parsed once at the edge with pydantic; the rest of the code gets a frozen, typed object.
Problems are reported all at once (``validation.format_validation_error``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from ..errors import ConfigError
from ..validation import format_validation_error
from . import constants as C
from .crypto.keys import key_file_problem
from .key_files import KeyFileError, load_signing_key
from .signing import parse_public_key

log = logging.getLogger(__name__)

StrictNumber = Annotated[float, Strict(), Field(allow_inf_nan=False)]
PositiveInt = Annotated[int, Strict(), Field(ge=1)]


def cross_field_problems(
    enabled: bool, key: object, kind: object, archive_format: object, level: object
) -> list[str]:
    """The rules that tie SYNC keys together; each line starts with its key."""
    problems: list[str] = []
    if enabled and key is None:
        problems.append("KEY: required when ENABLED is true")
    if enabled and kind is None:
        problems.append('TYPE: required when ENABLED is true ("provider" or "consumer")')
    if (
        isinstance(level, int)
        and not isinstance(level, bool)
        and archive_format in C.SNAPSHOT_FORMATS
    ):
        hi = 9 if archive_format == C.ARCHIVE_FORMAT_GZ else 19  # gzip, else zstd
        if not 1 <= level <= hi:
            problems.append(f"COMPRESSION_LEVEL: must be 1-{hi} for {archive_format}, got {level}")
    return problems


def encryption_problems(archive_format: object, key_file: object) -> list[str]:
    """tar.gz cannot be encrypted: the older runner's consumers read it and hold no key."""
    if key_file is not None and archive_format == C.ARCHIVE_FORMAT_GZ:
        return [
            'ENCRYPTION_KEY_FILE: cannot encrypt ARCHIVE_FORMAT "tar.gz" (the older '
            'runner reads tar.gz and cannot decrypt); use "chunked" or "tar.zst"'
        ]
    return []


def _raw_cross_field_problems(raw: dict[str, Any]) -> list[str]:
    return cross_field_problems(
        raw.get("ENABLED") is True,
        raw.get("KEY"),
        raw.get("TYPE"),
        raw.get("ARCHIVE_FORMAT", C.DEFAULT_ARCHIVE_FORMAT),
        raw.get("COMPRESSION_LEVEL"),
    ) + encryption_problems(
        raw.get("ARCHIVE_FORMAT", C.DEFAULT_ARCHIVE_FORMAT), raw.get("ENCRYPTION_KEY_FILE")
    )


class SyncConfig(BaseModel):
    """The SYNC block. Attribute names are lower case; JSON keys upper case."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    enabled: StrictBool = Field(False, alias="ENABLED", description="a JSON boolean (true/false)")
    key: str | None = Field(
        None,
        alias="KEY",
        min_length=1,
        max_length=C.MAX_SYNC_KEY_CHARS,
        description=f"a non-empty string of at most {C.MAX_SYNC_KEY_CHARS} characters",
    )
    type: Literal["provider", "consumer"] | None = Field(
        None, alias="TYPE", description='"provider" or "consumer"'
    )
    poll_interval: StrictNumber = Field(
        C.DEFAULT_POLL_INTERVAL,
        alias="POLL_INTERVAL",
        ge=C.MIN_POLL_INTERVAL,
        description="a number >= 1",
    )
    hsync_poll_interval: StrictNumber = Field(
        C.DEFAULT_HSYNC_POLL_INTERVAL,
        alias="HSYNC_POLL_INTERVAL",
        ge=C.MIN_HSYNC_POLL_INTERVAL,
        description="a number >= 10",
    )
    allow_online_provider_capture: StrictBool = Field(
        False, alias="ALLOW_ONLINE_PROVIDER_CAPTURE", description="a JSON boolean (true/false)"
    )
    consumer_apply_mode: Literal["offline_restart", "online_no_restart", "online_restart"] = Field(
        C.APPLY_OFFLINE_RESTART,
        alias="CONSUMER_APPLY_MODE",
        description='one of "offline_restart", "online_no_restart", "online_restart"',
    )
    apply_mode: Literal["overlay", "mirror"] = Field(
        C.APPLY_MODE_OVERLAY,
        alias="APPLY_MODE",
        description='"overlay" (keep what the snapshot lacks) or "mirror" (remove it)',
    )
    archive_format: Literal["tar.zst", "tar.gz", "chunked"] = Field(
        C.DEFAULT_ARCHIVE_FORMAT,
        alias="ARCHIVE_FORMAT",
        description='"chunked", "tar.zst" or "tar.gz"',
    )
    compression_level: Annotated[int, Strict()] | None = Field(
        None,
        alias="COMPRESSION_LEVEL",
        description="an integer (zstd 1-19 for tar.zst and chunked, gzip 1-9)",
    )
    max_archive_bytes: PositiveInt = Field(
        C.DEFAULT_MAX_ARCHIVE_BYTES, alias="MAX_ARCHIVE_BYTES", description="an integer >= 1"
    )
    max_unpacked_bytes: PositiveInt | None = Field(
        None, alias="MAX_UNPACKED_BYTES", description="an integer >= 1"
    )
    max_members: PositiveInt = Field(
        C.DEFAULT_MAX_MEMBERS, alias="MAX_MEMBERS", description="an integer >= 1"
    )
    publish_retry_seconds: StrictNumber = Field(
        C.DEFAULT_PUBLISH_RETRY_SECONDS,
        alias="PUBLISH_RETRY_SECONDS",
        ge=0,
        le=C.MAX_PUBLISH_RETRY_SECONDS,
        description=f"a number of seconds from 0 to {C.MAX_PUBLISH_RETRY_SECONDS}",
    )
    keep_snapshots: PositiveInt = Field(
        C.DEFAULT_KEEP_SNAPSHOTS,
        alias="KEEP_SNAPSHOTS",
        description="an integer >= 1 (published snapshots the provider keeps in the store)",
    )
    trusted_node_ids: list[Annotated[str, Strict()]] | None = Field(
        None, alias="TRUSTED_NODE_IDS", description="null or a list of node id strings"
    )
    # Signed records (README, "Signed records"); checked when the config is read.
    signing_key_file: Annotated[str, Strict()] | None = Field(
        None,
        alias="SIGNING_KEY_FILE",
        min_length=1,
        description="null or the path of a private key from `car keys generate --out PATH`",
    )
    trusted_keys: list[Annotated[str, Strict()]] | None = Field(
        None,
        alias="TRUSTED_KEYS",
        description='null or a list of public keys as written in PATH.pub ("car-ed25519:...")',
    )

    @field_validator("signing_key_file")
    @classmethod
    def _check_signing_key(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                load_signing_key(Path(value))
            except KeyFileError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("trusted_keys")
    @classmethod
    def _check_trusted_keys(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("an empty list trusts no key; use null to not verify records")
        for n, text in enumerate(value):
            try:
                parse_public_key(text)
            except ValueError as exc:
                raise ValueError(f"item {n} {exc}") from None
        return [text.strip() for text in value]

    encryption_key_file: Annotated[str, Strict()] | None = Field(
        None,
        alias="ENCRYPTION_KEY_FILE",
        min_length=1,
        description="null or the path of a 32-byte key file of mode 0600",
    )

    @field_validator("encryption_key_file")
    @classmethod
    def _check_key_file(cls, path: str | None) -> str | None:
        """Checked at parse time, so a bad key file stops the runner before any publish."""
        problem = key_file_problem(path) if path is not None else None
        if problem is not None:
            raise ValueError(f"{path} {problem}")
        return path

    takeover: StrictBool = Field(
        False,
        alias="TAKEOVER",
        description="a JSON boolean: true takes the key's lease from another provider",
    )
    schedule: StrictNumber | None = Field(
        None,
        alias="SCHEDULE",
        ge=1,
        description="null or a number of seconds >= 1 between host-side snapshots (provider)",
    )

    @model_validator(mode="after")
    def _check_cross_field_rules(self) -> SyncConfig:
        problems = cross_field_problems(
            self.enabled, self.key, self.type, self.archive_format, self.compression_level
        ) + encryption_problems(self.archive_format, self.encryption_key_file)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # --- derived values --------------------------------------------------------------
    @property
    def effective_compression_level(self) -> int:
        """The configured level, or the format's default."""
        if self.compression_level is not None:
            return self.compression_level
        if self.archive_format == C.ARCHIVE_FORMAT_GZ:
            return C.DEFAULT_GZIP_LEVEL
        return C.DEFAULT_ZSTD_LEVEL  # tar.zst, and each chunk of a chunked snapshot

    @property
    def effective_max_unpacked_bytes(self) -> int:
        """MAX_UNPACKED_BYTES, defaulting to 4 x MAX_ARCHIVE_BYTES."""
        if self.max_unpacked_bytes is not None:
            return self.max_unpacked_bytes
        return C.UNPACKED_TO_ARCHIVE_RATIO * self.max_archive_bytes

    @property
    def effective_apply_mode(self) -> str:
        """Always offline_restart: path-based apply is unsafe while the app runs."""
        return C.APPLY_OFFLINE_RESTART

    @property
    def apply_mode_note(self) -> str | None:
        """Why the configured apply mode was overridden, for the log; None if it was not."""
        if self.consumer_apply_mode == C.APPLY_OFFLINE_RESTART:
            return None
        return (
            f"SYNC.CONSUMER_APPLY_MODE {self.consumer_apply_mode!r} resolved to "
            "'offline_restart': applying while the app runs could race its writes"
        )

    @property
    def is_provider(self) -> bool:
        return self.enabled and self.type == C.ROLE_PROVIDER

    @property
    def is_consumer(self) -> bool:
        return self.enabled and self.type == C.ROLE_CONSUMER

    @classmethod
    def parse(cls, raw: Any, *, prefix: str = "SYNC") -> SyncConfig:
        """Validate a raw SYNC block (None means disabled).

        Raises:
            ConfigError: every problem, each line naming its key path.
        """
        if raw is None:
            return cls.model_validate({})
        if not isinstance(raw, dict):
            raise ConfigError(f"{prefix}: must be an object, got {type(raw).__name__}")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            lines = format_validation_error(cls, exc, prefix=prefix)
            # pydantic skips the cross-field check when a field failed; run it on the raw
            # values that are usable, so every problem is reported at once.
            if not any(line.startswith(f"{prefix}: ") for line in lines):
                lines += [f"{prefix}.{p}" for p in _raw_cross_field_problems(raw)]
            # Cross-field problems come back as one joined value_error line; split them.
            expanded: list[str] = []
            for line in lines:
                head, _, rest = line.partition(": ")
                if head == prefix and ": " in rest:
                    expanded.extend(f"{prefix}.{p}" for p in rest.split("; "))
                else:
                    expanded.append(line)
            raise ConfigError(expanded) from None
