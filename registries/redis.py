"""RedisRegistry (``redis://[:password@]host:port/db[?namespace=NS]``, also ``rediss://``).

Layout (docs/BACKENDS.md, "Storage layouts"): ``HSET <hkey> <key> <record JSON>`` in the
URL's database; with ``?namespace=NS`` the hash is named ``NS:<hkey>``, so several
deployments (or tests) share one server without seeing each other. The ack is HSET returning
without error: Redis applies one command atomically, and reads go to the server, so
``hsync`` is a no-op. Durability is the server's persistence setting (appendonly), not ours.

This is the only module that imports redis-py and the only place its errors are
translated: connection errors and timeouts → ``RegistryUnavailable`` (retried by
``registries/retrying.py``); wrong password → ``RegistryError`` with a hint. redis-py's
own retries are switched off: backends classify, the wrapper retries. Messages and
``describe()`` show the URL with the password redacted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, TypeVar
from urllib.parse import unquote

import redis
import redis.exceptions
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..backend_urls import query_params, redact_url, split_url
from ..errors import ConfigError, RegistryError, RegistryUnavailable
from .base import RegistryBackend
from .lease import Lease, LeaseHolder, LeaseResult, check_ttl

# ``lease.decide`` run by the server, atomically, on the server's clock (TIME), so
# runners on hosts with skewed clocks still agree on when a lease ends. Returns
# {granted, lease in force, displaced live lease or "", expired other lease or ""}.
_LEASE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local node, instance = ARGV[2], ARGV[3]
local ttl, takeover = tonumber(ARGV[4]), ARGV[5] == '1'
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local cur = nil
if raw then
  local ok, v = pcall(cjson.decode, raw)
  if ok and type(v) == 'table' and type(v.node_id) == 'string'
      and type(v.instance_id) == 'string' and type(v.expires_at) == 'number' then
    cur = v
  end
end
local mine = cjson.encode({node_id = node, instance_id = instance, expires_at = now + ttl})
if cur == nil or (cur.node_id == node and cur.instance_id == instance) then
  redis.call('HSET', KEYS[1], ARGV[1], mine)
  return {1, mine, '', ''}
end
if cur.expires_at <= now then
  redis.call('HSET', KEYS[1], ARGV[1], mine)
  return {1, mine, '', raw}
end
if takeover then
  redis.call('HSET', KEYS[1], ARGV[1], mine)
  return {1, mine, raw, ''}
end
return {0, raw, '', ''}
"""

URL_KEY = "STORAGE.REGISTRY"
TIMEOUT_S = 5.0
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RedisRegistryConfig:
    """How to reach the server and which hash names to use."""

    url: str  # redacted, for messages
    host: str
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    namespace: str | None = None

    @classmethod
    def from_url(cls, url: str) -> RedisRegistryConfig:
        """Parse ``redis[s]://[[user]:password@]host[:port][/db][?namespace=NS]``.

        Raises:
            ConfigError: no host, a non-numeric db, or an unknown parameter.
        """
        parts = split_url(url, key=URL_KEY, schemes=("redis", "rediss"))
        params = query_params(parts, key=URL_KEY, allowed=("namespace",))
        shown = redact_url(url)
        if not parts.hostname:
            raise ConfigError(f"{URL_KEY}: {shown} needs a host, like redis://127.0.0.1:6379/0")
        db_text = parts.path.strip("/") or "0"
        if not db_text.isdigit():
            raise ConfigError(f"{URL_KEY}: {shown}: database must be a number, got {db_text!r}")
        return cls(
            url=shown,
            host=parts.hostname,
            port=parts.port or 6379,
            db=int(db_text),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=parts.scheme == "rediss",
            namespace=params.get("namespace"),
        )


class RedisRegistry:
    """Registry hashes on a Redis server."""

    scheme: ClassVar[str] = "redis"

    def __init__(self, config: RedisRegistryConfig) -> None:
        self.config = config
        self._client = redis.Redis(
            host=config.host,
            port=config.port,
            db=config.db,
            username=config.username,
            password=config.password,
            ssl=config.tls,
            socket_timeout=TIMEOUT_S,
            socket_connect_timeout=TIMEOUT_S,
            decode_responses=True,
            # Values are untrusted: bad bytes become U+FFFD and the record parser refuses
            # them, instead of a UnicodeDecodeError escaping this boundary module.
            encoding_errors="replace",
            retry=Retry(NoBackoff(), 0),
        )

    @staticmethod
    def check_url(url: str) -> None:
        """Parse ``url`` without any I/O.

        Raises:
            ConfigError: the URL is malformed for this backend.
        """
        RedisRegistryConfig.from_url(url)

    @classmethod
    def from_url(cls, url: str) -> RedisRegistry:
        """Open a ``redis://`` or ``rediss://`` URL (connects lazily, on first use)."""
        return cls(RedisRegistryConfig.from_url(url))

    def hash_name(self, hkey: str) -> str:
        """The Redis hash that holds ``hkey`` (``NS:<hkey>`` with a namespace)."""
        return f"{self.config.namespace}:{hkey}" if self.config.namespace else hkey

    def hset(self, hkey: str, key: str, value: str) -> bool:
        """HSET; True once the server applied it.

        Raises:
            RegistryUnavailable: connection refused/lost, timeout, server loading.
            RegistryError: wrong credentials or a server-side error.
        """
        self._call(lambda: self._client.hset(self.hash_name(hkey), key, value), "hset")
        return True

    def hget(self, hkey: str, key: str) -> str | None:
        """HGET; None for a missing field.

        Raises:
            RegistryUnavailable: connection refused/lost, timeout, server loading.
            RegistryError: wrong credentials or a server-side error.
        """
        value = self._call(lambda: self._client.hget(self.hash_name(hkey), key), "hget")
        return None if value is None else str(value)

    def acquire_lease(
        self, hkey: str, key: str, holder: LeaseHolder, ttl_s: float, takeover: bool = False
    ) -> LeaseResult:
        """One server-side script (``_LEASE_SCRIPT``): read, decide and write atomically.

        Raises:
            RegistryUnavailable: connection refused/lost, timeout, server loading.
            RegistryError: wrong credentials or a server-side error.
        """
        check_ttl(ttl_s)
        args = (key, holder.node_id, holder.instance_id, repr(float(ttl_s)), int(takeover))
        reply = self._call(
            lambda: self._client.eval(_LEASE_SCRIPT, 1, self.hash_name(hkey), *args), "lease"
        )
        granted, lease, displaced, expired = (reply[0], *(str(v) for v in reply[1:4]))
        in_force = Lease.from_json(lease)
        if in_force is None:
            raise RegistryError(f"redis lease on {self.describe()}: unexpected reply {reply!r}")
        return LeaseResult(
            granted == 1,
            in_force,
            Lease.from_json(displaced or None),
            Lease.from_json(expired or None),
        )

    def hsync(self, hkey: str) -> None:
        """No-op: reads go to the server."""

    def check(self) -> None:
        """PING the server: it answers and accepts our credentials.

        Raises:
            RegistryUnavailable: connection refused/lost, timeout, server loading.
            RegistryError: wrong credentials or a server-side error.
        """
        self._call(self._client.ping, "ping")

    def describe(self) -> str:
        """The URL with the password redacted."""
        return self.config.url

    def close(self) -> None:
        """Close pooled connections (optional; garbage collection does it too)."""
        self._client.close()

    def _call(self, fn: Callable[[], T], op: str) -> T:
        """Run one redis-py call, translating its errors (the only place we do)."""
        where = f"redis {op} on {self.describe()}"
        try:
            return fn()
        # AuthenticationError subclasses ConnectionError: it must be caught first.
        except (
            redis.exceptions.AuthenticationError,
            redis.exceptions.AuthenticationWrongNumberOfArgsError,
        ) as exc:
            raise RegistryError(
                f"{where}: authentication failed", hint="check the password in STORAGE.REGISTRY"
            ) from exc
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise RegistryUnavailable(
                f"{where}: cannot reach the server ({exc})",
                hint="check host/port and that redis-server is running",
            ) from exc
        except redis.exceptions.RedisError as exc:
            hint = "check the password in STORAGE.REGISTRY" if "NOAUTH" in str(exc) else None
            raise RegistryError(f"{where} failed: {exc}", hint=hint) from exc


if TYPE_CHECKING:  # mypy --strict checks this class against RegistryBackend and Registry
    _backend: RegistryBackend = RedisRegistry
