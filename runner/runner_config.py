"""RunnerConfig: the validated runner config file (README, "Config keys").

Parsed once at the edge with pydantic (files are read by ``config_file.py``); everything
after ``RunnerConfig.parse`` works with
a frozen, typed object. Every problem is reported at once with its key path
(``validation.format_validation_error``), so ``car run`` can exit 2 before touching
Docker or volumes. The SYNC block is ``sync.config.SyncConfig`` (reused, not redefined)
and the volume entries are the volume layer's own specs.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    Strict,
    StrictInt,
    StrictStr,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from ..errors import ConfigError
from ..ops.config import MetricsAddr, NotifyConfig
from ..registries.factory import validate_registry_url
from ..stores.factory import validate_store_url
from ..sync.config import SyncConfig
from ..validation import format_validation_error, show_value
from ..volumes.specs import (
    FileVolumeSpec,
    FixedVolumeSpec,
    normalize_container_path,
    validate_volume_name,
)
from .app_logs import DEFAULT_KEEP_BYTES, DEFAULT_KEEP_FILES

INSTANCE_ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
NODE_ID_ENV = "CAR_NODE_ID"

Number = Annotated[float, Strict(), Field(allow_inf_nan=False)]


def _env_value(value: Any) -> str | int | float | bool:
    # One check instead of a pydantic union, which would report one line per member.
    if isinstance(value, str | int | float | bool):
        return value
    raise PydanticCustomError("env_value", "not a string, number or boolean")


def _command(value: Any) -> str | list[str]:
    if isinstance(value, str) or (
        isinstance(value, list) and all(isinstance(v, str) for v in value)
    ):
        return value
    raise PydanticCustomError("command", "not a string or list of strings")


EnvValue = Annotated[str | int | float | bool, PlainValidator(_env_value)]
Command = Annotated[str | list[str], PlainValidator(_command)]
VolumeName = Annotated[str, AfterValidator(validate_volume_name)]
ContainerPath = Annotated[str, AfterValidator(normalize_container_path)]


def default_node_id() -> str:
    """``CAR_NODE_ID`` if set, else this host's name (README, "Config keys")."""
    return os.environ.get(NODE_ID_ENV) or socket.gethostname()


class ContainerResources(BaseModel):
    """CONTAINER_RESOURCES: docker-py resource passthrough."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu: Number | None = Field(None, gt=0, description="a number of CPUs > 0 (e.g. 0.5)")
    memory: StrictStr | None = Field(
        None,
        pattern=r"^\d+[bkmgBKMG]?$",
        description='a memory limit like "512m" or "1g"',
    )
    ports: dict[StrictStr, StrictInt | None] = Field(
        default_factory=dict,
        description='an object like {"8080/tcp": 18080} (container port -> host port or null)',
    )


class StorageConfig(BaseModel):
    """STORAGE: backend URLs (docs/BACKENDS.md, "URL formats"); null: the embedded default."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    blobs: StrictStr | None = Field(
        None, alias="BLOBS", description="null or a blob store URL (docs/BACKENDS.md)"
    )
    registry: StrictStr | None = Field(
        None, alias="REGISTRY", description="null or a registry URL (docs/BACKENDS.md)"
    )


class RunnerConfig(BaseModel):
    """One runner config file. Attribute names are lower case; JSON keys as README "Config keys"."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    node_id: StrictStr = Field(
        default_factory=default_node_id,
        alias="NODE_ID",
        min_length=1,
        description="a non-empty string",
    )
    instance_id: StrictStr = Field(
        alias="INSTANCE_ID",
        pattern=INSTANCE_ID_PATTERN,
        description="1-63 characters of a-z, 0-9, '_', '.', '-', starting with a-z or 0-9",
    )
    image: StrictStr = Field(
        alias="IMAGE", min_length=1, description="a non-empty local image reference"
    )
    image_pull_policy: Literal["always", "if_not_present", "never"] = Field(
        "if_not_present",
        alias="IMAGE_PULL_POLICY",
        description='one of "always", "if_not_present", "never"',
    )
    container_entrypoint: Command | None = Field(
        None, alias="CONTAINER_ENTRYPOINT", description="null, a string or a list of strings"
    )
    container_start_command: Command | None = Field(
        None, alias="CONTAINER_START_COMMAND", description="null, a string or a list of strings"
    )
    container_user: StrictStr | None = Field(
        None, alias="CONTAINER_USER", description='null or a user like "1000" or "1000:1000"'
    )
    env: dict[StrictStr, EnvValue] = Field(
        default_factory=dict,
        alias="ENV",
        description="an object whose values are strings, numbers or booleans",
    )
    container_resources: ContainerResources = Field(
        default_factory=ContainerResources,
        alias="CONTAINER_RESOURCES",
        description="an object with cpu, memory, ports",
    )
    network_mode: StrictStr = Field(
        "bridge", alias="NETWORK_MODE", min_length=1, description='a Docker network mode ("none")'
    )
    restart_policy: Literal["always", "on-failure", "no"] = Field(
        "always", alias="RESTART_POLICY", description='one of "always", "on-failure", "no"'
    )
    restart_backoff_initial: Number = Field(
        10.0, alias="RESTART_BACKOFF_INITIAL", gt=0, description="a number of seconds > 0"
    )
    restart_backoff_max: Number = Field(
        600.0, alias="RESTART_BACKOFF_MAX", gt=0, description="a number of seconds > 0"
    )
    restart_backoff_multiplier: Number = Field(
        2.0, alias="RESTART_BACKOFF_MULTIPLIER", ge=1, description="a number >= 1"
    )
    restart_max_retries: StrictInt = Field(
        5, alias="RESTART_MAX_RETRIES", ge=0, description="an integer >= 0 (0 = unlimited)"
    )
    volumes: dict[VolumeName, ContainerPath] = Field(
        default_factory=dict,
        alias="VOLUMES",
        description="an object of volume name -> absolute container path",
    )
    file_volumes: dict[VolumeName, FileVolumeSpec] = Field(
        default_factory=dict,
        alias="FILE_VOLUMES",
        description="an object of name -> {content, mounting_point}",
    )
    fixed_size_volumes: dict[VolumeName, FixedVolumeSpec] = Field(
        default_factory=dict,
        alias="FIXED_SIZE_VOLUMES",
        description="an object of name -> {SIZE, MOUNTING_POINT, ...}",
    )
    process_delay: Number = Field(
        5.0, alias="PROCESS_DELAY", gt=0, description="a number of seconds > 0"
    )
    stop_timeout: StrictInt = Field(
        10, alias="STOP_TIMEOUT", ge=0, description="an integer number of seconds >= 0"
    )
    logs_keep_files: StrictInt = Field(
        DEFAULT_KEEP_FILES,
        alias="LOGS_KEEP_FILES",
        ge=1,
        description="an integer >= 1 (saved container logs kept in logs/)",
    )
    logs_keep_bytes: StrictInt = Field(
        DEFAULT_KEEP_BYTES,
        alias="LOGS_KEEP_BYTES",
        ge=1,
        description="an integer number of bytes >= 1 (total size of logs/ kept)",
    )
    sync: SyncConfig = Field(default_factory=SyncConfig, alias="SYNC", description="a SYNC object")
    storage: StorageConfig = Field(
        default_factory=StorageConfig,
        alias="STORAGE",
        description='an object {"BLOBS": URL or null, "REGISTRY": URL or null}',
    )
    # Metrics and alerts (README, "Metrics and alerts"); both off by default.
    metrics_addr: MetricsAddr | None = Field(
        None,
        alias="METRICS_ADDR",
        description='null or "HOST:PORT" (":PORT" or a bare port: 127.0.0.1)',
    )
    notify: NotifyConfig = Field(
        default_factory=NotifyConfig,
        alias="NOTIFY",
        description='an object {"URLS": [...], "ON_SUCCESS": bool, "HEARTBEAT_URL", "TIMEOUT"}',
    )

    def app_env(self) -> dict[str, str]:
        """ENV as Docker wants it: every value a string (JSON spelling for bools/numbers)."""
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in self.env.items()}

    @classmethod
    def parse(cls, raw: Any) -> RunnerConfig:
        """Validate a raw config object, reporting every problem at once.

        Raises:
            ConfigError: one "KEY.PATH: problem" line per problem.
        """
        if not isinstance(raw, dict):
            raise ConfigError(f"config: must be a JSON object, got {_json_type(raw)}")
        problems: list[str] = []
        sync = None
        try:
            sync = SyncConfig.parse(raw.get("SYNC"))
        except ConfigError as exc:
            problems.extend(exc.problems)
        rest = {k: v for k, v in raw.items() if k != "SYNC"}
        for key, model in _ENTRY_MODELS.items():
            if isinstance(rest.get(key), dict):
                rest[key] = _validate_entries(rest[key], model, key, problems)
        config = None
        try:
            config = cls.model_validate(rest)
        except ValidationError as exc:
            problems.extend(_tidy(line) for line in format_validation_error(cls, exc))
        if config is not None:
            problems.extend(_bind_collisions(config))
            problems.extend(_storage_problems(config.storage))
        if problems or config is None or sync is None:
            raise ConfigError(problems)
        return config.model_copy(update={"sync": sync})


# Entries validated one by one, so a problem names its full key path even though
# format_validation_error cannot see through the name level of a dict of models.
_ENTRY_MODELS: dict[str, type[BaseModel]] = {
    "FIXED_SIZE_VOLUMES": FixedVolumeSpec,
    "FILE_VOLUMES": FileVolumeSpec,
}


def _validate_entries(
    block: dict[Any, Any], model: type[BaseModel], key: str, problems: list[str]
) -> dict[Any, Any]:
    """Validate each object entry of ``block``; bad ones are reported and dropped."""
    checked: dict[Any, Any] = {}
    for name, entry in block.items():
        if not isinstance(entry, dict):
            problems.append(f"{key}.{name}: must be an object, got {show_value(entry)}")
            continue
        try:
            checked[name] = model.model_validate(entry)
        except ValidationError as exc:
            problems.extend(format_validation_error(model, exc, prefix=f"{key}.{name}"))
    return checked


def _json_type(value: Any) -> str:
    """How JSON (and YAML) would call ``value``'s type, for "got an array" messages."""
    if value is None:
        return "null"
    for kinds, name in ((bool, "a boolean"), (int | float, "a number"), (str, "a string")):
        if isinstance(value, kinds):
            return name
    return "an array" if isinstance(value, list) else f"a {type(value).__name__}"


def _tidy(line: str) -> str:
    """Drop pydantic's ``[key]`` marker from dict-key errors ("VOLUMES.x.[key]: ...")."""
    return line.replace(".[key]:", ":", 1)


def _bind_collisions(config: RunnerConfig) -> list[str]:
    """Two binds at one container path hide one another, and Docker cannot mount
    anything below a file volume: name both keys."""
    files = {
        s.mounting_point: f"FILE_VOLUMES.{n}.mounting_point" for n, s in config.file_volumes.items()
    }
    seen: dict[str, str] = {}
    problems: list[str] = []
    for key, path in _bind_entries(config):
        if path in seen:
            problems.append(f"{key}: container path {path} is already used by {seen[path]}")
        else:
            seen[path] = key
        under = next((f for f in files if path.startswith(f + "/")), None)
        if under is not None:
            problems.append(
                f"{key}: container path {path} lies below the file mounted at {under} "
                f"by {files[under]}; mount it elsewhere"
            )
    return problems


def _bind_entries(config: RunnerConfig) -> list[tuple[str, str]]:
    """(key path, container path) of every configured bind."""
    return [
        *((f"VOLUMES.{n}", p) for n, p in config.volumes.items()),
        *(
            (f"FILE_VOLUMES.{n}.mounting_point", s.mounting_point)
            for n, s in config.file_volumes.items()
        ),
        *(
            (f"FIXED_SIZE_VOLUMES.{n}.MOUNTING_POINT", s.mounting_point)
            for n, s in config.fixed_size_volumes.items()
        ),
    ]


def _storage_problems(storage: StorageConfig) -> list[str]:
    """Check the STORAGE URLs with the backend factories' own validators."""
    problems: list[str] = []
    checks: tuple[tuple[str, str | None, Callable[[str], None]], ...] = (
        ("STORAGE.BLOBS", storage.blobs, validate_store_url),
        ("STORAGE.REGISTRY", storage.registry, validate_registry_url),
    )
    for key, url, validate in checks:
        if url is None:
            continue
        try:
            validate(url)
        except ConfigError as exc:
            problems.extend(p if p.startswith(key) else f"{key}: {p}" for p in exc.problems)
    return problems


__all__ = [
    "INSTANCE_ID_PATTERN",
    "ContainerResources",
    "RunnerConfig",
    "StorageConfig",
]
