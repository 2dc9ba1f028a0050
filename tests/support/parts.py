"""Shared test helpers: CAR_TEST_REQUIRE handling and the record of what really ran.

``unavailable("redis", why)`` fails the test when ``redis`` is listed in
``CAR_TEST_REQUIRE`` (CI sets it) and skips it otherwise, so a missing server can never
turn a CI run green by silently skipping (restic's RESTIC_TEST_DISALLOW_SKIP).
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

# Names of real parts that at least one test actually used; printed at session end.
PARTS_USED: set[str] = set()


def required_parts() -> set[str]:
    raw = os.environ.get("CAR_TEST_REQUIRE", "")
    return {p.strip() for p in raw.split(",") if p.strip()}


def unavailable(part: str, why: str) -> NoReturn:
    """Skip (or, when ``part`` is required, fail) because a real part is missing."""
    if part in required_parts():
        pytest.fail(f"{part} is required (CAR_TEST_REQUIRE) but unavailable: {why}")
    pytest.skip(f"{part} unavailable: {why}")


def used(part: str) -> None:
    """Record that a test ran against the real ``part``."""
    PARTS_USED.add(part)
