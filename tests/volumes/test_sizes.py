"""volumes/sizes.py: SIZE strings to bytes and back."""

from __future__ import annotations

import pytest
from container_apps.volumes.sizes import format_size, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100M", 100 * 1024**2),
        ("1G", 1024**3),
        ("1024K", 1024**2),
        ("1048576", 1024**2),
        ("16m", 16 * 1024**2),
        (" 2T ", 2 * 1024**4),
    ],
)
def test_parse_size_accepts_suffixes_and_plain_bytes(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["10Q", "", "M", "1.5G", "-1M", "10 M", "1MB", "0x10M"])
def test_parse_size_rejects_malformed_text(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_size(text)
    assert "invalid size" in str(info.value)


def test_parse_size_rejects_below_one_mebibyte() -> None:
    with pytest.raises(ValueError) as info:
        parse_size("512K")
    assert "minimum of 1M" in str(info.value)


def test_parse_size_rejects_absurdly_large_sizes() -> None:
    with pytest.raises(ValueError) as info:
        parse_size("100000000G")
    assert "maximum" in str(info.value)


@pytest.mark.parametrize(
    ("size", "text"),
    [(16 * 1024**2, "16M"), (1024**3, "1G"), (1536 * 1024, "1536K"), (1000, "1000")],
)
def test_format_size_uses_the_largest_exact_unit(size: int, text: str) -> None:
    assert format_size(size) == text
