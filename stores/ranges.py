"""Byte-range helpers every store shares: argument checks and the past-the-end error.

``BlobStore.get_range`` (stores/base.py) returns exactly the bytes asked for or raises;
short data would let a caller decompress or hash a truncated chunk. Written once so that
every backend refuses the same ranges with the same words.
"""

from __future__ import annotations

from ..errors import StoreError
from .blobfiles import check_blob_id


def check_range(blob_id: str, offset: int, length: int) -> None:
    """Refuse an unsafe id, a negative offset or an empty/negative length.

    Raises:
        StoreError: invalid blob id or invalid range.
    """
    check_blob_id(blob_id)
    if offset < 0 or length < 1:
        raise StoreError(
            f"invalid range of blob {blob_id}: offset {offset}, length {length}",
            hint="offset must be >= 0 and length >= 1",
        )


def past_end(blob_id: str, offset: int, length: int, size: int | None) -> StoreError:
    """The error for a range that does not lie wholly inside the blob."""
    where = f" (blob is {size} bytes)" if size is not None else ""
    return StoreError(
        f"range {offset}+{length} of blob {blob_id} reaches past the end{where}",
        hint="the index that named this range does not match the stored blob",
    )
