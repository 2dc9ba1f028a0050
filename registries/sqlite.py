"""SqliteRegistry (``sqlite:///abs/path``): the embedded default registry, one file per host.

Layout (docs/BACKENDS.md, "Storage layouts", part of the contract): one table
``registry(hkey TEXT, key TEXT, value TEXT NOT NULL, updated_at REAL, PRIMARY KEY (hkey, key))``
holding the record JSON, so an operator can inspect it with the ``sqlite3`` shell.

Several runner processes share the file: WAL lets readers run beside a writer, a busy
timeout makes writers queue instead of failing, and each ``hset`` is one autocommit
statement with ``synchronous=FULL``, so the ack means the row is on disk. Each call opens
its own connection: cheap next to a snapshot, and safe across threads and forks. A
database still locked after the busy timeout is ``RegistryUnavailable`` (retried).
Only absolute paths are accepted: a relative one would depend on the working directory.

A read-only file (mode, owner, ``chattr +i``, a read-only mount) is refused for every
role, readers included: the file is shared by all the host's runners, any of which may
publish, and WAL readers need write access beside it too. It is not a config error (the
URL is right) but a fixable outage: ``check()`` says so with the fix, and the sync
manager re-checks with backoff, so fixing the permissions needs no restart. The same
holds for a file that is not a database (restore it or move it aside).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..backend_urls import absolute_path, query_params, split_url
from ..errors import RegistryError, RegistryUnavailable
from .base import RegistryBackend
from .lease import Lease, LeaseHolder, LeaseResult, check_ttl, decide

URL_KEY = "STORAGE.REGISTRY"
EXAMPLE_URL = "sqlite:///var/lib/car/shared/registry.sqlite"
BUSY_TIMEOUT_S = 10.0
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS registry (hkey TEXT, key TEXT, value TEXT NOT NULL, "
    "updated_at REAL, PRIMARY KEY (hkey, key))"
)
_UPSERT = (
    "INSERT INTO registry (hkey, key, value, updated_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (hkey, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
)
_TRANSIENT_MARKERS = ("database is locked", "database table is locked", "busy")
_READ_ONLY_MARKERS = ("readonly database", "read-only file system")
READ_ONLY_HINT = (
    "every runner needs write access to the registry file and its directory: "
    "fix the owner or mode (chown/chmod), clear an immutable flag (chattr -i) or remount "
    "read-write; checked again with backoff, no restart needed"
)
NOT_A_DATABASE_HINT = (
    "the file is not a registry database: restore it from a backup, or move it aside to "
    "start an empty registry; checked again with backoff, no restart needed"
)


@dataclass(frozen=True, slots=True)
class SqliteRegistryConfig:
    """The database file."""

    path: Path

    @classmethod
    def from_url(cls, url: str) -> SqliteRegistryConfig:
        """Parse ``sqlite:///abs/path``.

        Raises:
            ConfigError: host part, relative path, or any query parameter.
        """
        parts = split_url(url, key=URL_KEY, schemes=("sqlite",))
        query_params(parts, key=URL_KEY, allowed=())
        return cls(absolute_path(parts, key=URL_KEY, example=EXAMPLE_URL))


class SqliteRegistry:
    """The registry table in one SQLite file shared by this host's runners."""

    scheme: ClassVar[str] = "sqlite"

    def __init__(self, config: SqliteRegistryConfig) -> None:
        self.path = config.path
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RegistryError(
                f"cannot create {self.path.parent} for {self.describe()}: {exc.strerror}",
                hint="fix STORAGE.REGISTRY or the directory's permissions",
            ) from exc
        self._initialise()

    @staticmethod
    def check_url(url: str) -> None:
        """Parse ``url`` without any I/O.

        Raises:
            ConfigError: the URL is malformed for this backend.
        """
        SqliteRegistryConfig.from_url(url)

    @classmethod
    def from_url(cls, url: str) -> SqliteRegistry:
        """Open (and create if needed) the database of a ``sqlite:///`` URL."""
        return cls(SqliteRegistryConfig.from_url(url))

    def hset(self, hkey: str, key: str, value: str) -> bool:
        """Upsert (hkey, key) in its own transaction; True once committed (fsynced).

        Raises:
            RegistryUnavailable: still locked by another process after the busy timeout.
            RegistryError: the file is unreadable or not a database.
        """
        with self._connect() as conn:
            conn.execute(_UPSERT, (hkey, key, value, time.time()))
        return True

    def hget(self, hkey: str, key: str) -> str | None:
        """The value under (hkey, key), or None.

        Raises:
            RegistryUnavailable: locked after the busy timeout.
            RegistryError: the file is unreadable or not a database.
        """
        with self._connect() as conn:
            row = conn.execute(
                "SELECT value FROM registry WHERE hkey = ? AND key = ?", (hkey, key)
            ).fetchone()
        if row is None:
            return None
        value = row[0]
        if isinstance(value, bytes):
            # Another tool's bytes land as a BLOB despite the TEXT column; undecodable
            # bytes become U+FFFD, so the consumer refuses them as a malformed record.
            return value.decode("utf-8", errors="replace")
        return str(value)

    def acquire_lease(
        self, hkey: str, key: str, holder: LeaseHolder, ttl_s: float, takeover: bool = False
    ) -> LeaseResult:
        """Read, ``lease.decide`` and write in one ``BEGIN IMMEDIATE`` transaction.

        IMMEDIATE takes the write lock before the read, so two runners cannot both read
        "free" and both write; the second waits (busy timeout) and then sees the first's
        lease. Expiry is judged by this host's clock, which every runner sharing the
        file shares.

        Raises:
            RegistryUnavailable: locked after the busy timeout.
            RegistryError: the file is unreadable or not a database.
        """
        check_ttl(ttl_s)
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    "SELECT value FROM registry WHERE hkey = ? AND key = ?", (hkey, key)
                ).fetchone()
                now = time.time()
                current = Lease.from_json(row[0] if row and isinstance(row[0], str) else None)
                result = decide(current, holder, now, ttl_s, takeover)
                if result.acquired:
                    conn.execute(_UPSERT, (hkey, key, result.lease.to_json(), now))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return result

    def hsync(self, hkey: str) -> None:
        """No-op: every read goes to the shared file."""

    def check(self) -> None:
        """The file is a registry database this runner can read and write; writes nothing.

        Raises:
            RegistryUnavailable: locked after the busy timeout.
            RegistryError: read-only, unreadable or not a database (the hint says the fix).
        """
        self._require_writable()
        with self._connect() as conn:
            conn.execute("SELECT 1 FROM registry LIMIT 1").fetchall()

    def describe(self) -> str:
        """``sqlite://<path>`` (no secrets in a path)."""
        return f"sqlite://{self.path}"

    def _require_writable(self) -> None:
        """Refuse a read-only file or directory up front (see the module docstring).

        SQLite itself would open such a file read-only without a word, serve reads, and
        fail only the provider's publish, after the app was stopped for the snapshot.
        """
        for path, what in ((self.path, "file"), (self.path.parent, "directory")):
            if path.exists() and not os.access(path, os.W_OK):
                raise RegistryError(
                    f"{self.describe()}: the registry {what} {path} is read-only for this runner",
                    hint=READ_ONLY_HINT,
                )

    def _initialise(self) -> None:
        """Switch the file to WAL and create the table, racing safely with other processes.

        Two processes creating a fresh file can deadlock inside SQLite (both hold a read
        lock and want the write lock); SQLite then answers "locked" at once instead of
        waiting. So this one step waits out the busy timeout itself, like SQLite's busy
        handler would; every later call relies on the busy handler alone.
        """
        self._require_writable()
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                with self._connect() as conn:
                    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                        conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute("BEGIN IMMEDIATE")
                    conn.execute(_SCHEMA)
                    conn.execute("COMMIT")
                return
            except RegistryUnavailable:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.02)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A fresh autocommit connection; sqlite3 errors become our registry errors."""
        try:
            with closing(
                sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            ) as conn:
                conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
                conn.execute("PRAGMA synchronous = FULL")
                yield conn
        except sqlite3.OperationalError as exc:
            text = str(exc).lower()
            if any(marker in text for marker in _TRANSIENT_MARKERS):
                raise RegistryUnavailable(f"{self.describe()}: {exc}") from exc
            if any(marker in text for marker in _READ_ONLY_MARKERS):
                raise RegistryError(f"{self.describe()}: {exc}", hint=READ_ONLY_HINT) from exc
            raise RegistryError(
                f"{self.describe()}: {exc}", hint="check the path and its permissions"
            ) from exc
        except sqlite3.DatabaseError as exc:
            raise RegistryError(f"{self.describe()}: {exc}", hint=NOT_A_DATABASE_HINT) from exc


if TYPE_CHECKING:  # mypy --strict checks this class against RegistryBackend and Registry
    _backend: RegistryBackend = SqliteRegistry
