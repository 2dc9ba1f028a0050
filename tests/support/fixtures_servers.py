"""Real Redis and S3 (SeaweedFS ``weed mini``) servers for tests, on 127.0.0.1.

Session fixtures start one server each (or reuse one named by ``CAR_TEST_REDIS_URL`` /
``CAR_TEST_S3_ENDPOINT``), poll until ready and stop it by PID in ``finally``. Function
fixtures give each test its own space: a fresh S3 bucket named from the test id, and a
fresh Redis namespace whose keys are deleted afterwards. A server that cannot start is
``unavailable(...)``: a skip locally, a failure when CI lists it in ``CAR_TEST_REQUIRE``.

Fixture names other tests use: ``redis_url``, ``s3_server``, ``s3_store_url``,
``redis_registry_url``, ``private_redis`` (a redis-server a test may stop).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from container_apps.tests.support.parts import unavailable, used
from container_apps.tests.support.servers import (
    ServerProcess,
    http_ok,
    redis_ping,
    start_redis,
    start_weed,
    stop_process,
)

S3_ACCESS_KEY = "car-test-access"
S3_SECRET_KEY = "car-test-secret-not-for-production"


@dataclass(frozen=True)
class S3Server:
    """How to reach the test S3 service."""

    endpoint_url: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def client(self) -> Any:
        """A boto3 S3 client with these credentials (tests only)."""
        import boto3
        import botocore.config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=botocore.config.Config(s3={"addressing_style": "path"}),
        )

    def store_url(self, bucket: str, prefix: str = "") -> str:
        """An ``s3://`` store URL for ``bucket``/``prefix`` on this server."""
        path = f"/{prefix}" if prefix else ""
        return f"s3://{bucket}{path}?endpoint_url={self.endpoint_url}"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``redis://127.0.0.1:PORT/0`` of a session redis-server (or ``CAR_TEST_REDIS_URL``)."""
    reuse = os.environ.get("CAR_TEST_REDIS_URL")
    if reuse:
        yield reuse
        return
    try:
        server = start_redis(tmp_path_factory.mktemp("redis"))
    except (OSError, RuntimeError, TimeoutError) as exc:
        unavailable("redis", str(exc))
    try:
        yield f"redis://127.0.0.1:{server.ports['redis']}/0"
    finally:
        stop_process(server)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A session ``weed mini`` S3 service with signatures enforced (or ``CAR_TEST_S3_*``)."""
    reuse = os.environ.get("CAR_TEST_S3_ENDPOINT")
    if reuse:
        access = os.environ.get("CAR_TEST_S3_ACCESS_KEY", os.environ.get("AWS_ACCESS_KEY_ID", ""))
        secret = os.environ.get(
            "CAR_TEST_S3_SECRET_KEY", os.environ.get("AWS_SECRET_ACCESS_KEY", "")
        )
        if not http_ok(f"{reuse.rstrip('/')}/healthz"):
            unavailable("s3", f"CAR_TEST_S3_ENDPOINT={reuse} does not answer /healthz")
        yield S3Server(reuse, access, secret)
        return
    try:
        server = start_weed(tmp_path_factory.mktemp("weed"), S3_ACCESS_KEY, S3_SECRET_KEY)
    except (OSError, RuntimeError, TimeoutError) as exc:
        unavailable("s3", str(exc))
    try:
        yield S3Server(f"http://127.0.0.1:{server.ports['s3']}", S3_ACCESS_KEY, S3_SECRET_KEY)
    finally:
        stop_process(server)


def _bucket_name(node_name: str) -> str:
    """A valid, unique S3 bucket name derived from the test id (restic's test-<nanos>)."""
    stem = re.sub(r"[^a-z0-9-]+", "-", node_name.lower()).strip("-")[:40].strip("-")
    return f"t-{stem}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def s3_store_url(
    s3_server: S3Server, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A fresh bucket for this test; yields its ``s3://bucket/car?endpoint_url=…`` URL.

    The test S3 credentials are exported (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``)
    for the test's duration, the way a deployment provides them to boto3.
    """
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    client = s3_server.client()
    bucket = _bucket_name(request.node.name)
    client.create_bucket(Bucket=bucket)
    used("s3")
    try:
        yield s3_server.store_url(bucket, "car")
    finally:
        _drop_bucket(client, bucket)


def _drop_bucket(client: Any, bucket: str) -> None:
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=obj["Key"])
    client.delete_bucket(Bucket=bucket)


@pytest.fixture
def redis_registry_url(redis_url: str) -> Iterator[str]:
    """``redis_url`` with a fresh ``?namespace=``; the namespace's keys are deleted after."""
    import redis

    if not redis_ping_url(redis_url):
        unavailable("redis", f"{redis_url} does not answer PING")
    namespace = f"t{uuid.uuid4().hex[:12]}"
    sep = "&" if "?" in redis_url else "?"
    used("redis")
    try:
        yield f"{redis_url}{sep}namespace={namespace}"
    finally:
        client = redis.Redis.from_url(redis_url)
        try:
            for key in client.scan_iter(match=f"{namespace}:*"):
                client.delete(key)
        finally:
            client.close()


def redis_ping_url(url: str) -> bool:
    """True if the (password-less) server of ``url`` answers PING."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password:  # let redis-py handle AUTH; the raw probe cannot
        return True
    return redis_ping(parts.port or 6379, parts.hostname or "127.0.0.1")


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[ServerProcess]:
    """A redis-server of this test alone, which it may stop (never the session one)."""
    try:
        server = start_redis(tmp_path / "private-redis")
    except (OSError, RuntimeError, TimeoutError) as exc:
        unavailable("redis", str(exc))
    used("redis")
    try:
        yield server
    finally:
        stop_process(server)
