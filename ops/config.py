"""The runner config's ``METRICS_ADDR`` and ``NOTIFY`` (README, "Metrics and alerts").

Validated at the edge like the rest of ``RunnerConfig``, so a bad address or URL stops
``car run`` with exit 2 before anything starts. ``METRICS_ADDR`` is loopback unless a host
is given: ``":9310"`` and ``9310`` both mean ``127.0.0.1:9310``.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictStr,
)
from pydantic_core import PydanticCustomError

from ..errors import ConfigError

LOOPBACK = "127.0.0.1"
DEFAULT_NOTIFY_TIMEOUT = 5.0
MAX_NOTIFY_TIMEOUT = 60.0


def split_metrics_addr(value: str) -> tuple[str, int]:
    """``"HOST:PORT"`` -> (host, port); ``":PORT"`` or ``"PORT"`` -> (127.0.0.1, port).

    Raises:
        ValueError: not an address with a port 0-65535 (0: any free port).
    """
    text = value.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "", text
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f'expected "HOST:PORT" with a port 0-65535, got {value!r}')
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]  # [::1]:9310
        ipaddress.IPv6Address(host)
    elif ":" in host:
        raise ValueError(f'an IPv6 address needs brackets ("[::1]:9310"), got {value!r}')
    if any(c.isspace() or c in "/@" for c in host):
        raise ValueError(f"not a host name or address: {host!r}")
    return host or LOOPBACK, int(port_text)


def check_metrics_addr(value: str, key: str = "METRICS_ADDR") -> str:
    """The normalised ``HOST:PORT`` of a ``--metrics-addr`` value.

    Raises:
        ConfigError: one "KEY: problem" line.
    """
    try:
        return _metrics_addr(value)
    except PydanticCustomError as exc:
        raise ConfigError(f"{key}: {exc.message()}") from None


def _metrics_addr(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise PydanticCustomError("metrics_addr", 'not a "HOST:PORT" string')
    try:
        host, port = split_metrics_addr(value)
    except ValueError as exc:
        raise PydanticCustomError("metrics_addr", "{reason}", {"reason": str(exc)}) from None
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PydanticCustomError("notify_url", "not an http:// or https:// URL")
    return value


MetricsAddr = Annotated[str, PlainValidator(_metrics_addr)]
HttpUrl = Annotated[StrictStr, AfterValidator(_http_url)]


class NotifyConfig(BaseModel):
    """NOTIFY: webhooks told of failures (and successes if asked), and a heartbeat URL."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    urls: list[HttpUrl] = Field(
        default_factory=list,
        alias="URLS",
        description="a list of http(s) webhook URLs (each gets a JSON POST per event)",
    )
    on_success: StrictBool = Field(
        False, alias="ON_SUCCESS", description="a boolean (also post published/applied)"
    )
    heartbeat_url: HttpUrl | None = Field(
        None,
        alias="HEARTBEAT_URL",
        description="null or an http(s) URL fetched after each successful sync tick",
    )
    timeout: float = Field(
        DEFAULT_NOTIFY_TIMEOUT,
        alias="TIMEOUT",
        gt=0,
        le=MAX_NOTIFY_TIMEOUT,
        allow_inf_nan=False,
        strict=True,
        description=f"a number of seconds > 0 and <= {MAX_NOTIFY_TIMEOUT:.0f} per call",
    )

    @property
    def enabled(self) -> bool:
        return bool(self.urls) or self.heartbeat_url is not None


def redact_endpoint(url: str) -> str:
    """What a log line may show of a webhook URL: scheme, host and port only.

    Webhook URLs carry their secret in the path or query (Slack, ntfy, healthchecks).
    """
    parts = urlsplit(url)
    host = parts.hostname or "?"
    shown = f"[{host}]" if ":" in host else host
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is not None:
        shown = f"{shown}:{port}"
    tail = "/..." if parts.path not in ("", "/") or parts.query else ""
    return f"{parts.scheme}://{shown}{tail}"
