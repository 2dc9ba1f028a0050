"""Chunker: content-defined cuts, sizes within bounds, streaming equals in-memory."""

from __future__ import annotations

import io

import pyfastcdc
from container_apps.sync.chunks import constants as K
from container_apps.sync.chunks.chunker import Chunker
from container_apps.sync.chunks.ids import SHA256_IDS
from container_apps.tests.support.random_data import MiB, random_bytes, text_bytes


def cuts(data: bytes, chunker: Chunker | None = None) -> list[int]:
    return [len(c) for c in (chunker or Chunker()).split(io.BytesIO(data), len(data))]


def test_chunker_is_the_compiled_extension() -> None:
    # The pure-Python fallback is ~100x slower; a wheel without the extension must fail.
    assert pyfastcdc.FastCDC.__module__ == "pyfastcdc.cy.fastcdc"


def test_file_smaller_than_the_minimum_is_one_chunk() -> None:
    assert cuts(random_bytes(K.CHUNK_MIN_BYTES - 1)) == [K.CHUNK_MIN_BYTES - 1]
    assert cuts(b"x") == [1]


def test_empty_file_has_no_chunks() -> None:
    assert cuts(b"") == []


def test_chunk_sizes_stay_in_bounds_and_average_about_one_mib() -> None:
    data = random_bytes(64 * MiB)
    sizes = cuts(data)
    assert sum(sizes) == len(data)
    assert all(K.CHUNK_MIN_BYTES <= s <= K.CHUNK_MAX_BYTES for s in sizes[:-1])
    mean = sum(sizes) / len(sizes)
    assert 0.75 * MiB <= mean <= 1.5 * MiB, mean


def test_compressible_text_is_cut_too_never_above_the_maximum() -> None:
    sizes = cuts(b"\x00" * (20 * MiB))
    assert sizes[:2] == [K.CHUNK_MAX_BYTES, K.CHUNK_MAX_BYTES]
    assert len(cuts(text_bytes(10 * MiB))) > 1


def test_streamed_big_file_cuts_exactly_like_in_memory() -> None:
    data = random_bytes(3 * K.SMALL_FILE_BYTES + 12345, seed=5)
    streamed = cuts(data)
    in_memory = cuts(data, Chunker(small_file_bytes=len(data)))
    assert streamed == in_memory


def test_yielded_chunks_stay_valid_after_the_next_one() -> None:
    data = random_bytes(K.SMALL_FILE_BYTES + 5 * MiB, seed=6)
    small = random_bytes(3 * MiB, seed=7)
    for blob in (data, small):
        chunks = list(Chunker().split(io.BytesIO(blob), len(blob)))
        assert b"".join(bytes(c) for c in chunks) == blob


def test_a_stream_longer_than_its_size_hint_is_read_to_the_end() -> None:
    data = random_bytes(2 * MiB)
    chunks = list(Chunker().split(io.BytesIO(data), 1000))
    assert sum(len(c) for c in chunks) == len(data)  # the caller sees the file grew


def test_inserted_bytes_change_only_the_chunks_around_them() -> None:
    data = random_bytes(40 * MiB, seed=8)
    edited = data[: 20 * MiB] + b"inserted!" * 11 + data[20 * MiB :]
    before = {SHA256_IDS(c) for c in Chunker().split(io.BytesIO(data), len(data))}
    after = [SHA256_IDS(c) for c in Chunker().split(io.BytesIO(edited), len(edited))]
    changed = [d for d in after if d not in before]
    assert 1 <= len(changed) <= 2, len(changed)
    assert len(after) >= 25


def test_boundaries_restart_at_each_file() -> None:
    a, b = random_bytes(5 * MiB + 3, seed=10), random_bytes(5 * MiB, seed=11)
    chunker = Chunker()
    list(chunker.split(io.BytesIO(a), len(a)))  # nothing of file a carries over to b
    assert cuts(b, chunker) == cuts(b, Chunker())
    assert cuts(b)[0] != [len(c) for c in Chunker().split(io.BytesIO(a + b), len(a + b))][5]
