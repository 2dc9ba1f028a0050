"""One error tree for everything container_apps raises.

Catch ``CarError`` to catch all of it. Errors carry the fields an operator needs
(paths, ids, stage) plus an optional ``hint`` saying what to do. Only ``ConfigError``
and ``RequestRejected`` messages are written for app authors and operators; the rest
are logged with context. Third-party errors are translated at the boundary modules
(``runner/docker_runtime.py``, ``stores/s3.py``, ``registries/redis.py``) with ``raise ... from``.

Transient errors (safe to retry) subclass ``TransientError`` as well, so a retry
wrapper needs a single ``isinstance`` check.
"""

from __future__ import annotations


class CarError(Exception):
    """Root of every error this project raises."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class TransientError(CarError):
    """Marker base: the operation may succeed if retried later (outage, timeout)."""


class ConfigError(CarError, ValueError):
    """Bad runner config or SYNC block. ``problems`` lists every "key.path: reason"."""

    def __init__(self, problems: list[str] | str, *, hint: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems), hint=hint)


class VolumeError(CarError):
    """Loopback volume provisioning or mounting failed."""

    def __init__(
        self,
        message: str,
        *,
        image: str | None = None,
        device: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.image = image
        self.device = device


class ContainerRuntimeError(CarError):
    """The Docker engine refused or failed an operation."""

    def __init__(self, message: str, *, status: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class ContainerNotFound(ContainerRuntimeError):
    """The container (or image) does not exist."""


class SyncError(CarError):
    """Volume-sync failure. ``stage`` is a stage label (docs/FORMAT.md, "response.json")."""

    def __init__(self, message: str, *, stage: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.stage = stage


class RequestRejected(SyncError):
    """A request.json (or a path in it) is invalid. ``code`` is stable, for machines."""

    def __init__(
        self, message: str, *, code: str, stage: str = "validation", hint: str | None = None
    ) -> None:
        super().__init__(message, stage=stage, hint=hint)
        self.code = code


class SnapshotInvalid(SyncError):
    """A record, manifest or archive failed validation. ``reasons`` lists every problem."""

    def __init__(
        self,
        reasons: list[str] | str,
        *,
        stage: str = "validation",
        hint: str | None = None,
    ) -> None:
        self.reasons = [reasons] if isinstance(reasons, str) else list(reasons)
        super().__init__("; ".join(self.reasons), stage=stage, hint=hint)


class ApplyFailed(SyncError):
    """Applying a snapshot failed. ``rolled_back`` says whether the volume is consistent."""

    def __init__(
        self, message: str, *, stage: str = "commit", rolled_back: bool, hint: str | None = None
    ) -> None:
        super().__init__(message, stage=stage, hint=hint)
        self.rolled_back = rolled_back


class StoreError(CarError):
    """A blob store operation failed permanently."""


class BlobNotFound(StoreError, KeyError):
    """No blob with that id exists in the store."""

    def __init__(self, blob_id: str, *, hint: str | None = None) -> None:
        super().__init__(f"blob {blob_id} not found", hint=hint)
        self.blob_id = blob_id

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return CarError.__str__(self)


class BlobCorrupt(StoreError):
    """A blob's bytes do not match its id/digest; the bad copy was deleted."""

    def __init__(self, blob_id: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.blob_id = blob_id


class BlobTooLarge(StoreError):
    """A blob is bigger than the caller allows; nothing was transferred or deleted."""

    def __init__(self, blob_id: str, size: int, limit: int, *, hint: str | None = None) -> None:
        super().__init__(
            f"blob {blob_id} is {size} bytes, more than the {limit} allowed", hint=hint
        )
        self.blob_id = blob_id
        self.size = size
        self.limit = limit


class StoreUnavailable(StoreError, TransientError):
    """The blob store could not be reached; safe to retry."""


class RegistryError(CarError):
    """A registry operation failed permanently."""


class RegistryUnavailable(RegistryError, TransientError):
    """The registry could not be reached; safe to retry."""
