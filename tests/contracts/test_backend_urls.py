"""redact_url and the shared URL parsing rules."""

from __future__ import annotations

import pytest
from container_apps.backend_urls import redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("redis://user:pw@h:1/2?namespace=n", "redis://user:***@h:1/2?namespace=n"),
        ("rediss://token@h:1/0", "rediss://***@h:1/0"),
        (
            "s3://AKIA:SECRET@bucket/p?endpoint_url=http://127.0.0.1:9",
            "s3://AKIA:***@bucket/p?endpoint_url=http://127.0.0.1:9",
        ),
        ("s3://bucket?secret_key=abc&region=x", "s3://bucket?secret_key=***&region=x"),
        ("redis://h:1/0?password=abc", "redis://h:1/0?password=***"),
        ("file:///var/lib/car/blobs", "file:///var/lib/car/blobs"),
        ("sqlite:///var/lib/car/r.sqlite", "sqlite:///var/lib/car/r.sqlite"),
        ("redis://:pw@h:notaport/0", "redis://***"),
        ("not a url", "not a url"),
        ("user:secret@host", "***"),
    ],
)
def test_redact_url_hides_passwords_and_secret_parameters(url: str, shown: str) -> None:
    assert redact_url(url) == shown
