"""Volume sizes as operators write them ("100M", "1G", "512K", "1048576") and back.

One parser for every SIZE in a config (README, "Config keys") and one formatter for messages,
so an error says "SIZE 8M is smaller than the existing image (16M)" in the same units.
Suffixes are binary (K = 1024) because that is what ``fallocate -l`` and ``mkfs`` use.
"""

from __future__ import annotations

import re

MIB = 1024**2
MIN_VOLUME_BYTES = MIB
# Far beyond any loop volume we mean to create; catches a typo like "100000000G" early.
MAX_VOLUME_BYTES = 1024**5

_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE_RE = re.compile(r"^(\d{1,20})([KMGT]?)$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Parse a volume size: digits with an optional K/M/G/T suffix (binary units).

    Args:
        text: e.g. "100M", "1G", "512K", or a plain byte count "1048576".

    Returns:
        The size in bytes.

    Raises:
        ValueError: the text is not a size, or it is below 1M or above 1P.
    """
    match = _SIZE_RE.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"invalid size {text!r}: use digits with an optional K, M, G or T suffix "
            '(e.g. "100M", "1G", "1048576")'
        )
    size = int(match.group(1)) * _UNITS[match.group(2).upper()]
    if size < MIN_VOLUME_BYTES:
        raise ValueError(f"size {text!r} is below the minimum of 1M")
    if size > MAX_VOLUME_BYTES:
        raise ValueError(f"size {text!r} is above the maximum of 1024T")
    return size


def format_size(size: int) -> str:
    """The shortest exact form of ``size`` ("16M", "1536K", "1000"), for messages."""
    for suffix in ("T", "G", "M", "K"):
        unit = _UNITS[suffix]
        if size >= unit and size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)
